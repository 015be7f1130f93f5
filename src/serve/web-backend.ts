// Backend choice in the browser: WebGPU if the browser has it, else hardware WebGL, else wasm (served locally).
import '@tensorflow/tfjs-backend-webgpu';
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '../core/tf.js';
import { registerWasmKernels } from '../engine/wasm-kernels.js';
import type { BackendReport, WebBackend } from './protocol.js';

// WebGL drawn on the CPU is slower than wasm's SIMD kernels, so it is skipped unless asked for by name.
const SOFTWARE_RENDERER = /swiftshader|llvmpipe|software|basic render/i;

/** The WebGL renderer's name, or undefined when the browser cannot create a WebGL2 context. */
function webglRenderer(): string | undefined {
  if (typeof OffscreenCanvas === 'undefined') return undefined;
  const gl = new OffscreenCanvas(1, 1).getContext('webgl2');
  if (gl === null) return undefined;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(info === null ? gl.RENDERER : info.UNMASKED_RENDERER_WEBGL));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  return renderer;
}

async function trySetBackend(name: WebBackend): Promise<boolean> {
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  }
}

/**
 * Selects the first backend that works, `forced` only when given, and says why others were skipped.
 * `wasmBase` is the URL folder holding tfjs-backend-wasm's .wasm files.
 */
export async function selectWebBackend(wasmBase: string, forced?: WebBackend): Promise<BackendReport> {
  const skipped: string[] = [];
  const wanted = (name: WebBackend) => forced === undefined || forced === name;

  if (wanted('webgpu')) {
    if (!('gpu' in navigator)) skipped.push('no WebGPU in this browser');
    else if (await trySetBackend('webgpu')) return { backend: 'webgpu', detail: 'WebGPU', skipped };
    else skipped.push('WebGPU has no usable adapter');
  }
  if (wanted('webgl')) {
    const renderer = webglRenderer();
    if (renderer === undefined) skipped.push('no WebGL2');
    else if (forced === undefined && SOFTWARE_RENDERER.test(renderer))
      skipped.push(`WebGL is software-rendered (${SOFTWARE_RENDERER.exec(renderer)?.[0]})`);
    else if (await trySetBackend('webgl'))
      return { backend: 'webgl', detail: `WebGL (${renderer})`, skipped };
    else skipped.push(`WebGL (${renderer}) failed to start`);
  }
  if (wanted('wasm')) {
    setWasmPaths(wasmBase);
    registerWasmKernels();
    if (await trySetBackend('wasm')) {
      const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) ? 'SIMD' : 'no SIMD';
      const threads = getThreadsCount();
      return {
        backend: 'wasm',
        detail: `wasm (${simd}, ${threads} thread${threads === 1 ? '' : 's'})`,
        skipped,
      };
    }
    skipped.push('wasm failed to start');
  }
  throw new Error(
    `no TF.js backend could start${forced === undefined ? '' : ` (asked for ${forced})`}: ${skipped.join('; ')}`,
  );
}
