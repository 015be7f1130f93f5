// The addon's c10d process group (native/src/distributed.cc) over tfjs tensors of the torch backend: broadcast,
// mean all-reduce and all-gather, each one native call on one flat buffer however many tensors it carries.
import * as tf from '../../core/tf.js';
import type { TorchBackend } from './backend.js';

/** Where the rendezvous is and how this rank reaches the others. */
export interface RendezvousOptions {
  /** Address of rank 0, which serves the TCPStore. */
  readonly host: string;
  readonly port: number;
  readonly rank: number;
  readonly worldSize: number;
  /** How long a rendezvous or a collective waits for the other ranks. */
  readonly timeoutMs: number;
  /**
   * The network interface Gloo sends on: a name (`eth0`, GLOO_SOCKET_IFNAME as in PyTorch), the interface of an
   * address (`127.0.0.1` when every rank is on this machine), or this host's default.
   */
  readonly gloo: { readonly interface: string } | { readonly address: string } | 'default';
}

/** The collectives a data-parallel trainer needs; results are new tensors the caller owns. */
export interface Collectives {
  readonly rank: number;
  readonly worldSize: number;
  /** Each tensor's element-wise mean over the ranks. */
  allReduceMean(tensors: readonly tf.Tensor[]): tf.Tensor[];
  /** Rank `root`'s values of each tensor (every rank passes tensors of the same shapes and dtype). */
  broadcast(tensors: readonly tf.Tensor[], root: number): tf.Tensor[];
  /** Every rank's tensor stacked along a new first axis, in rank order. */
  allGather(tensor: tf.Tensor): tf.Tensor;
  barrier(): void;
  /** Calls made and milliseconds spent in them (waiting for the other ranks included), since the group began. */
  readonly traffic: { readonly calls: number; readonly ms: number };
  /** Leaves the group (the store and the connections close). */
  shutdown(): void;
}

function torchBackend(): TorchBackend {
  if (tf.getBackend() !== 'torch') {
    throw new Error(
      `data-parallel training runs on the torch backend (c10d lives in libtorch); this process uses ` +
        `${tf.getBackend()}: pass --backend torch`,
    );
  }
  return tf.backend() as TorchBackend;
}

/** Joins the process group: blocks until every rank has arrived (or the timeout passes). */
export function joinProcessGroup(o: RendezvousOptions): Collectives {
  const backend = torchBackend();
  const [deviceName, deviceKind] =
    o.gloo === 'default' ? ['', 0] : 'address' in o.gloo ? [o.gloo.address, 1] : [o.gloo.interface, 2];
  backend
    .args()
    .str(o.host)
    .int(o.port)
    .int(o.rank)
    .int(o.worldSize)
    .int(o.timeoutMs)
    .str(deviceName)
    .int(deviceKind);
  try {
    backend.run('dist_init');
  } catch (err) {
    throw new Error(
      `rank ${o.rank} of ${o.worldSize} could not join the process group at ${o.host}:${o.port} within ` +
        `${o.timeoutMs / 1000} s: is every rank started, with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE, ` +
        `and is the port reachable? (${(err as Error).message})`,
    );
  }
  const wrap = (infos: tf.TensorInfo[]): tf.Tensor[] =>
    infos.map((info) => tf.engine().makeTensorFromTensorInfo(info, backend));
  const traffic = { calls: 0, ms: 0 };
  const timed = <T>(call: () => T): T => {
    const began = performance.now();
    try {
      return call();
    } finally {
      traffic.calls += 1;
      traffic.ms += performance.now() - began;
    }
  };
  const sameDtype = (tensors: readonly tf.Tensor[], what: string): void => {
    if (tensors.some((t) => t.dtype !== tensors[0]?.dtype))
      throw new Error(`${what}: tensors of mixed dtypes`);
  };
  return {
    rank: o.rank,
    worldSize: o.worldSize,
    traffic,
    allReduceMean(tensors) {
      if (tensors.length === 0) return [];
      sameDtype(tensors, 'allReduceMean');
      return timed(() => {
        backend.argsList(tensors);
        return wrap(backend.run('dist_allreduce_mean'));
      });
    },
    broadcast(tensors, root) {
      if (tensors.length === 0) return [];
      sameDtype(tensors, 'broadcast');
      return timed(() => {
        backend.argsList(tensors).int(root);
        return wrap(backend.run('dist_broadcast'));
      });
    },
    allGather(tensor) {
      return timed(() => {
        backend.args(tensor);
        return wrap([backend.run1('dist_allgather')])[0]!;
      });
    },
    barrier() {
      timed(() => {
        backend.args();
        backend.run('dist_barrier');
      });
    },
    shutdown() {
      backend.args();
      backend.run('dist_shutdown');
    },
  };
}
