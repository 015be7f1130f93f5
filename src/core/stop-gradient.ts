// sg(x) for TF.js, which has no stop-gradient op.
import * as tf from './tf.js';

/**
 * The values of `x` with no path back to it for gradients: a second tensor over x's data, made outside any
 * kernel, so the gradient tape never links it to `x`. Nothing is copied or read back to the host (a read would
 * make the host wait for a GPU). Each of the two tensors is disposed on its own; the data lives while either does.
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  tf.backend().incRef(x.dataId); // the new tensor's reference, released when it is disposed
  return tf.engine().makeTensorFromTensorInfo({ dataId: x.dataId, shape: x.shape, dtype: x.dtype }) as T;
}
