// Tiny untrained MNIST-shaped model folders for the serve tests: an autoencoder, a teacher and a LADD student.
import { join } from 'node:path';
import { Rng } from '../core/rng.js';
import type { DiffusionModelConfig } from '../models/schema.js';
import { initAutoencoder } from '../nn/autoencoder.js';
import { initUNet } from '../nn/unet.js';
import { jittered, TINY_AE_CONFIG, tinyTeacherConfig, writeFolders } from './tiny-models.js';

export const TINY_AE = TINY_AE_CONFIG;

export const TINY_TEACHER: DiffusionModelConfig = tinyTeacherConfig({
  autoencoder: '../autoencoder',
  sampling: { steps: [32], cfg: 1 },
});

export const TINY_STUDENT: DiffusionModelConfig = {
  ...TINY_TEACHER,
  kind: 'student',
  prediction: 'x0',
  sampling: { steps: [1, 2], cfg: 1 },
  distill: { method: 'ladd', teacher: '../teacher' },
};

/** Writes `<root>/mnist/{autoencoder,teacher,ladd}`; returns the mnist folder. Needs an initialised backend. */
export async function writeTinyModels(root: string): Promise<string> {
  const dir = join(root, 'mnist');
  // Noise on every weight, so zero-initialised output layers still draw varied images.
  await writeFolders(dir, [
    ['autoencoder', TINY_AE, jittered(initAutoencoder(TINY_AE.autoencoder, new Rng(0)), new Rng(1), 0.2)],
    ['teacher', TINY_TEACHER, jittered(initUNet(TINY_TEACHER.unet, new Rng(0)), new Rng(2), 0.2)],
    ['ladd', TINY_STUDENT, jittered(initUNet(TINY_STUDENT.unet, new Rng(0)), new Rng(3), 0.2)],
  ]);
  return dir;
}
