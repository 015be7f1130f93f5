// The page's frame machinery: a worker client, the frame loop that keeps a canvas regenerating, its figures.
import type {
  BackendReport,
  GeneratedGrid,
  GridCondition,
  WebBackend,
  WorkerReply,
  WorkerRequest,
} from './protocol.js';

const SCALE = 3; // screen pixels per image pixel
const STATS_WINDOW = 10; // frames averaged for the figures

type Request = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

/** A generation worker with request/reply promises. */
export class GeneratorWorker {
  private readonly worker = new Worker(new URL('worker.js', location.href), { type: 'module' });
  private readonly pending = new Map<
    number,
    { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  readonly ready: Promise<BackendReport>;

  constructor(backend: WebBackend | undefined) {
    this.worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const reply = event.data;
      const waiter = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.type === 'error') waiter?.reject(new Error(reply.message));
      else waiter?.resolve(reply);
    };
    this.worker.onerror = (event) => {
      const error = new Error(`the generation worker failed: ${event.message || 'could not load worker.js'}`);
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    this.ready = this.request({ type: 'init', ...(backend === undefined ? {} : { backend }) }).then(
      (r) => r as BackendReport,
    );
  }

  private request(message: Request): Promise<WorkerReply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id } as WorkerRequest);
    });
  }

  /** One grid of the images `condition` asks for from the model folder at `url`, in rows of `columns`. */
  async generate(
    url: string,
    condition: GridCondition,
    steps: number,
    seed: number,
    columns: number,
    cfg?: number,
  ): Promise<GeneratedGrid> {
    const reply = await this.request({
      type: 'generate',
      url,
      condition,
      steps,
      seed,
      columns,
      ...(cfg === undefined ? {} : { cfg }),
    });
    return reply as GeneratedGrid;
  }
}

/** Puts the grid on the canvas at its own resolution; CSS scales it up with crisp pixels. */
function draw(canvas: HTMLCanvasElement, grid: GeneratedGrid): void {
  if (canvas.width !== grid.width || canvas.height !== grid.height) {
    canvas.width = grid.width;
    canvas.height = grid.height;
    canvas.style.width = `${grid.width * SCALE}px`;
  }
  const pixels = new Uint8ClampedArray(
    grid.rgba.buffer as ArrayBuffer,
    grid.rgba.byteOffset,
    grid.rgba.length,
  );
  canvas.getContext('2d')?.putImageData(new ImageData(pixels, grid.width, grid.height), 0, 0);
}

/**
 * Frame figures over the last few frames: wall-clock images/s and worker ms per image. A run's first frame is
 * left out: it also fetches the model and compiles kernels or shaders.
 */
export class Stats {
  private frames: { images: number; wallMs: number; ms: number }[] = [];
  private count = 0;
  constructor(private readonly element: HTMLElement) {}

  reset(text = ''): void {
    this.frames = [];
    this.count = 0;
    this.element.dataset.ips = '0';
    this.element.dataset.frames = '0';
    this.element.textContent = text;
  }

  add(images: number, wallMs: number, ms: number): void {
    this.count++;
    this.element.dataset.frames = String(this.count);
    if (this.count === 1) {
      this.element.textContent = `warming up (first frame: ${Math.round(wallMs)} ms, model loading included)`;
      return;
    }
    this.frames = [...this.frames.slice(-(STATS_WINDOW - 1)), { images, wallMs, ms }];
    const sum = (key: 'images' | 'wallMs' | 'ms') => this.frames.reduce((a, f) => a + f[key], 0);
    const ips = (1000 * sum('images')) / sum('wallMs');
    const msPerImage = sum('ms') / sum('images');
    this.element.dataset.ips = String(ips);
    this.element.textContent = `${ips.toFixed(1)} images/s · ${msPerImage.toFixed(1)} ms/image · frame ${this.count}`;
  }
}

/** What one frame asks the worker for. */
export interface FrameRequest {
  readonly url: string;
  readonly condition: GridCondition;
  readonly steps: number;
  readonly columns: number;
  /** Seed of the first frame; each later frame takes the next (default 0). */
  readonly seed?: number;
  /** Guidance scale (default: the model's own). */
  readonly cfg?: number;
}

/** Generates frame after frame (a new seed each) into a canvas until stopped. */
export class FrameLoop {
  private run = 0; // each start gets a new number, so a frame still in flight from an earlier run ends there
  private running = false;
  private sinceChange = 0; // frames since the request last changed: the seed's offset
  constructor(
    private readonly worker: GeneratorWorker,
    private readonly canvas: HTMLCanvasElement,
    private readonly stats: Stats,
    private readonly onError: (message: string) => void,
  ) {}

  get isRunning(): boolean {
    return this.running;
  }

  /** Starts the loop; `next` gives each frame's request (the figures restart when it changes). */
  start(next: () => FrameRequest): void {
    if (this.running) return;
    this.running = true;
    const run = ++this.run;
    let previous = '';
    const frame = async () => {
      if (run !== this.run) return;
      const { url, condition, steps, columns, seed = 0, cfg } = next();
      const whom =
        'labels' in condition ? condition.labels.join() : `${condition.count} x ${condition.prompt}`;
      const key = `${url} ${steps} ${cfg} ${seed} ${whom}`;
      if (key !== previous) {
        this.stats.reset('starting…');
        this.sinceChange = 0;
      }
      previous = key;
      const began = performance.now();
      try {
        const grid = await this.worker.generate(
          url,
          condition,
          steps,
          seed + this.sinceChange++,
          columns,
          cfg,
        );
        if (run !== this.run) return;
        draw(this.canvas, grid);
        this.stats.add(grid.images, performance.now() - began, grid.ms);
        this.canvas.dataset.tensors = String(grid.tensors);
        requestAnimationFrame(() => void frame());
      } catch (err) {
        if (run !== this.run) return;
        this.stop();
        this.stats.reset('stopped');
        this.onError(`generation stopped: ${(err as Error).message}`);
      }
    };
    requestAnimationFrame(() => void frame());
  }

  stop(): void {
    this.running = false;
    this.run++;
  }
}
