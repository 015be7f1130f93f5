// Times a U-Net-like denoiser training step (conv, GroupNorm, SiLU, time-embedding matmuls, skips,
// nearest upsampling, Adam) on TF.js backends; bench/torch-vs-pytorch.py builds the same net in PyTorch.
// Usage: npx tsx bench/torch-backend.ts [--backends torch,wasm] [--steps 10] [--batch 32] [--device cpu|cuda]
import { parseArgs } from 'node:util';
import { Rng } from '../src/core/rng.js';
import * as tf from '../src/core/tf.js';
import { initBackend } from '../src/engine/backend.js';
import { registerTorchBackend } from '../src/engine/torch/register.js';

const { values: args } = parseArgs({
  options: {
    backends: { type: 'string', default: 'torch,wasm' },
    steps: { type: 'string', default: '10' },
    batch: { type: 'string', default: '32' },
    device: { type: 'string', default: 'cpu' },
  },
});
const STEPS = Number(args.steps);
const BATCH = Number(args.batch);
const SIZE = 28;
const GROUPS = 8;

// --- parameters ----------------------------------------------------------------------------------

type Params = Map<string, tf.Variable>;

function makeParams(rng: Rng): Params {
  const params: Params = new Map();
  const set = (name: string, init: tf.Tensor) => {
    params.set(name, tf.variable(init, true, name));
    init.dispose(); // the variable holds its own reference to the data
  };
  const add = (name: string, shape: number[], scale: number) => {
    const values = rng.fillNormal(new Float32Array(tf.util.sizeFromShape(shape))).map((v) => v * scale);
    set(name, tf.tensor(values, shape));
  };
  const conv = (name: string, k: number, cin: number, cout: number) => {
    add(`${name}.w`, [k, k, cin, cout], Math.sqrt(2 / (k * k * cin)));
    set(`${name}.b`, tf.zeros([cout]));
  };
  const norm = (name: string, c: number) => {
    set(`${name}.g`, tf.ones([c]));
    set(`${name}.b`, tf.zeros([c]));
  };
  const block = (name: string, cin: number, cout: number) => {
    norm(`${name}.n1`, cin);
    conv(`${name}.c1`, 3, cin, cout);
    add(`${name}.t`, [128, cout], Math.sqrt(1 / 128));
    norm(`${name}.n2`, cout);
    conv(`${name}.c2`, 3, cout, cout);
    if (cin !== cout) conv(`${name}.skip`, 1, cin, cout);
  };
  add('temb.w1', [32, 128], Math.sqrt(1 / 32));
  add('temb.w2', [128, 128], Math.sqrt(1 / 128));
  conv('in', 3, 1, 32);
  block('b28', 32, 32);
  conv('down1', 3, 32, 64);
  block('b14', 64, 64);
  conv('down2', 3, 64, 128);
  block('mid', 128, 128);
  conv('up1', 3, 128, 64);
  block('u14', 128, 64);
  conv('up2', 3, 64, 32);
  block('u28', 64, 32);
  norm('out.n', 32);
  conv('out', 3, 32, 1);
  return params;
}

// --- network -------------------------------------------------------------------------------------

function p(params: Params, name: string): tf.Tensor {
  const v = params.get(name);
  if (v === undefined) throw new Error(`missing parameter ${name}`);
  return v;
}

function conv(params: Params, name: string, x: tf.Tensor4D, stride = 1): tf.Tensor4D {
  return tf.conv2d(x, p(params, `${name}.w`) as tf.Tensor4D, stride, 'same').add(p(params, `${name}.b`));
}

function groupNormSilu(params: Params, name: string, x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const grouped = x.reshape([b, h, w, GROUPS, c / GROUPS]); // [B, H, W, G, C/G]
  const { mean, variance } = tf.moments(grouped, [1, 2, 4], true);
  const y = grouped.sub(mean).mul(variance.add(1e-5).rsqrt()).reshape([b, h, w, c]);
  const z = y.mul(p(params, `${name}.g`)).add(p(params, `${name}.b`));
  return z.mul(tf.sigmoid(z));
}

function block(params: Params, name: string, x: tf.Tensor4D, temb: tf.Tensor2D): tf.Tensor4D {
  let h = conv(params, `${name}.c1`, groupNormSilu(params, `${name}.n1`, x));
  const t = tf.matMul(temb, p(params, `${name}.t`) as tf.Tensor2D); // [B, C]
  h = h.add(t.reshape([t.shape[0], 1, 1, t.shape[1]]));
  h = conv(params, `${name}.c2`, groupNormSilu(params, `${name}.n2`, h));
  const skip = params.has(`${name}.skip.w`) ? conv(params, `${name}.skip`, x) : x;
  return skip.add(h);
}

function timeEmbedding(params: Params, sigma: tf.Tensor1D): tf.Tensor2D {
  const freqs = tf.exp(tf.range(0, 16).mul(-Math.log(1000) / 16)); // [16]
  const angles = sigma
    .log()
    .reshape([-1, 1])
    .mul(freqs.reshape([1, 16])); // [B, 16]
  const feats = tf.concat([tf.sin(angles), tf.cos(angles)], 1) as tf.Tensor2D; // [B, 32]
  const h = tf.matMul(feats, p(params, 'temb.w1') as tf.Tensor2D);
  return tf.matMul(h.mul(tf.sigmoid(h)), p(params, 'temb.w2') as tf.Tensor2D);
}

function unet(params: Params, x: tf.Tensor4D, sigma: tf.Tensor1D): tf.Tensor4D {
  const temb = timeEmbedding(params, sigma);
  const s28 = block(params, 'b28', conv(params, 'in', x), temb); // [B, 28, 28, 32]
  const s14 = block(params, 'b14', conv(params, 'down1', s28, 2), temb); // [B, 14, 14, 64]
  const mid = block(params, 'mid', conv(params, 'down2', s14, 2), temb); // [B, 7, 7, 128]
  const u14 = conv(params, 'up1', tf.image.resizeNearestNeighbor(mid, [14, 14]));
  const d14 = block(params, 'u14', tf.concat([u14, s14], 3) as tf.Tensor4D, temb); // [B, 14, 14, 64]
  const u28 = conv(params, 'up2', tf.image.resizeNearestNeighbor(d14, [28, 28]));
  const d28 = block(params, 'u28', tf.concat([u28, s28], 3) as tf.Tensor4D, temb); // [B, 28, 28, 32]
  return conv(params, 'out', groupNormSilu(params, 'out.n', d28));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

// --- timing --------------------------------------------------------------------------------------

async function timeBackend(name: string): Promise<void> {
  if (name === 'torch') await registerTorchBackend({ device: args.device === 'cuda' ? 'cuda' : 'cpu' });
  await initBackend(name);
  const rng = new Rng(0);
  const params = makeParams(rng);
  const count = [...params.values()].reduce((n, v) => n + v.size, 0);
  const opt = tf.train.adam(2e-4);
  const n = BATCH * SIZE * SIZE;
  const times: number[] = [];
  const cpuTimes: number[] = [];
  let faults = 0;
  let loss = 0;
  for (let step = 0; step < STEPS + 2; step++) {
    // Noise is drawn on the CPU, as ladder does, and uploaded every step.
    const clean = rng.fillNormal(new Float32Array(n));
    const noise = rng.fillNormal(new Float32Array(n));
    const sigmas = Float32Array.from({ length: BATCH }, () => Math.exp(rng.normal() - 1));
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    const faultStart = process.resourceUsage().minorPageFault;
    const cost = opt.minimize(() => {
      const x0 = tf.tensor4d(clean, [BATCH, SIZE, SIZE, 1]);
      const eps = tf.tensor4d(noise, [BATCH, SIZE, SIZE, 1]);
      const sigma = tf.tensor1d(sigmas);
      const xt = x0.add(eps.mul(sigma.reshape([-1, 1, 1, 1])));
      return tf.mean(tf.square(unet(params, xt, sigma).sub(eps)));
    }, true);
    loss = (await cost?.data())?.[0] ?? Number.NaN; // the read waits for the step to finish
    cost?.dispose();
    if (step >= 2) {
      times.push(performance.now() - start);
      const cpu = process.cpuUsage(cpuStart);
      cpuTimes.push((cpu.user + cpu.system) / 1000);
      faults += process.resourceUsage().minorPageFault - faultStart;
    }
  }
  console.log(
    `${name.padEnd(6)} ${median(times).toFixed(0).padStart(6)} ms/step, ` +
      `${median(cpuTimes).toFixed(0).padStart(6)} CPU ms/step (median of ${STEPS}; batch ${BATCH}, ` +
      `${SIZE}x${SIZE}, ${(count / 1e3).toFixed(0)}k params, last loss ${loss.toFixed(4)}, ` +
      `${(faults / STEPS).toFixed(0)} page faults/step, ` +
      `${tf.memory().numTensors} tensors live)`,
  );
  opt.dispose();
  for (const v of params.values()) v.dispose();
}

for (const name of (args.backends ?? '').split(',')) await timeBackend(name.trim());
