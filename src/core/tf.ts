// The one import of TF.js for ladder. tfjs-core's Node bundle registers neither the gradient functions nor the
// chained tensor methods (x.add(y)); the @tensorflow/tfjs package registers both into tfjs-core's global
// registries, so it is loaded here once for that side effect. The chained methods' types are tfjs-core's own.
import '@tensorflow/tfjs';
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';

export * from '@tensorflow/tfjs-core';
