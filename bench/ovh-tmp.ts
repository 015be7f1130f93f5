import * as tf from '../src/core/tf.js';
import { registerTorchBackend } from '../src/engine/torch/backend.js';
await registerTorchBackend({ threads: 1 });
for (const b of ['cpu', 'torch']) {
  await tf.setBackend(b);
  const a = tf.tensor([1, 2, 3, 4]);
  const c = tf.tensor([1, 2, 3, 4]);
  const run = (n: number) => { for (let i = 0; i < n; i++) tf.tidy(() => { a.add(c).mul(a).sub(c); }); };
  run(2000);
  const t = performance.now(); run(20000); const ms = performance.now() - t;
  console.log(b, 'us per op (tiny, no tape)', (ms * 1000 / 60000).toFixed(2));
  const g = tf.grad((x: tf.Tensor) => x.add(c).mul(a).sub(c).sum());
  const run2 = (n: number) => { for (let i = 0; i < n; i++) tf.tidy(() => { g(a); }); };
  run2(500);
  const t2 = performance.now(); run2(5000); const ms2 = performance.now() - t2;
  console.log(b, 'us per grad call (4 fwd ops + bwd)', (ms2 * 1000 / 5000).toFixed(2));
}
