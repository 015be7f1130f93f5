// Every kernel the torch backend registers.
import { elementwiseKernels } from './elementwise.js';
import { fusedKernels } from './fused.js';
import { gatherKernels } from './gather.js';
import { imageKernels } from './image.js';
import { nnKernels } from './nn.js';
import { reduceKernels } from './reduce.js';
import { shapeKernels } from './shape.js';
import type { TorchKernel } from './util.js';

/** The full kernel list (kernel names as tfjs spells them). */
export function torchKernels(): TorchKernel[] {
  return [
    ...elementwiseKernels(),
    ...reduceKernels(),
    ...shapeKernels(),
    ...gatherKernels(),
    ...nnKernels(),
    ...imageKernels(),
    ...fusedKernels(),
  ];
}
