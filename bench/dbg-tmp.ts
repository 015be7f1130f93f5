import * as tf from '../src/core/tf.js';
import { initBackend } from '../src/engine/backend.js';
await initBackend('wasm');
const before = tf.memory().numTensors;
const v = tf.variable(tf.zeros([2]));
const opt = tf.train.adam(1e-3);
for (let i = 0; i < 3; i++) { const c = opt.minimize(() => v.square().sum(), true); c?.dispose(); }
opt.dispose(); v.dispose();
console.log('leftover tensors after adam on wasm', tf.memory().numTensors - before, Object.keys(tf.engine().registeredVariables));
