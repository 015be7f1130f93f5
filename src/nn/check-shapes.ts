// Checking loaded weights against the parameters a config builds (pure, so the browser loader shares it).
import type { Params } from './params.js';

/** Fails with every difference listed when `actual` and `expected` differ in names or shapes. */
export function checkSameShapes(actual: Params, expected: Params, source: string): void {
  const problems: string[] = [];
  for (const [k, t] of Object.entries(expected)) {
    const a = actual[k];
    if (!a) problems.push(`missing ${k}`);
    else if (a.shape.join() !== t.shape.join())
      problems.push(`${k} has shape [${a.shape}], expected [${t.shape}]`);
    else if (a.dtype !== t.dtype) problems.push(`${k} has dtype ${a.dtype}, expected ${t.dtype}`);
  }
  for (const k of Object.keys(actual)) if (!(k in expected)) problems.push(`unexpected ${k}`);
  if (problems.length > 0) {
    const shown =
      problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; and ${problems.length - 8} more` : '');
    throw new Error(`${source} does not match the model config: ${shown}`);
  }
}

/**
 * Takes ownership of loaded `weights` and of `expected` (the parameters the config builds): returns the weights
 * when they match, else disposes them and throws. `expected` is disposed either way.
 */
export function acceptWeights(weights: Params, expected: Params, source: string): Params {
  try {
    checkSameShapes(weights, expected, source);
    return weights;
  } catch (err) {
    for (const t of Object.values(weights)) t.dispose();
    throw err;
  } finally {
    for (const t of Object.values(expected)) t.dispose();
  }
}
