import * as tf from '../src/core/tf.js';
import { registerTorchBackend } from '../src/engine/torch/backend.js';
await registerTorchBackend({ threads: 1 });
await tf.setBackend('torch');
function bench(f: () => void, n = 20): number {
  f();
  const t = process.cpuUsage();
  for (let i = 0; i < n; i++) f();
  const c = process.cpuUsage(t);
  return (c.user + c.system) / 1000 / n;
}
for (const [h, cin, cout] of [[14, 64, 64], [28, 64, 32]] as const) {
  const x = tf.randomNormal([32, h, h, cin]) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, cin, cout]) as tf.Tensor4D;
  const dy = tf.randomNormal([32, h, h, cout]) as tf.Tensor4D;
  console.log(h, cin, cout, 'fwd', bench(() => tf.tidy(() => { tf.conv2d(x, w, 1, 'same'); })).toFixed(2),
    'bwdInput', bench(() => tf.tidy(() => { tf.conv2dTranspose(dy, w, [32, h, h, cin], 1, 'same'); })).toFixed(2),
    'bwdFilter', bench(() => tf.tidy(() => { tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, cin, cout] }); })).toFixed(2),
    'mul', bench(() => tf.tidy(() => { x.mul(x); })).toFixed(2),
    'sum', bench(() => tf.tidy(() => { x.sum([0, 1, 2]); })).toFixed(2));
}
