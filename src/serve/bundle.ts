// Builds the browser files into a folder (default dist/web), bundled by esbuild: the `ladder serve` page (app.js +
// worker.js), the library's browser entry (ladder.js, from src/web.ts) with an example page using it, the static
// files, and tfjs-backend-wasm's .wasm binaries, so nothing needs to be online.
// Run with `tsx src/serve/bundle.ts [outDir]` (npm run build:web); needs the dev dependencies.
import { copyFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const STATIC_FILES = ['index.html', 'style.css', 'example.html'];
/** The library's browser entry in the built folder. */
export const LIBRARY_BUNDLE = 'ladder.js';
const WASM_FILES = [
  'tfjs-backend-wasm.wasm',
  'tfjs-backend-wasm-simd.wasm',
  'tfjs-backend-wasm-threaded-simd.wasm',
];

export interface WebBuild {
  readonly outDir: string;
  /** Source files bundled, relative to the package root (node_modules included). */
  readonly inputs: readonly string[];
  /** Minified JS of the page and worker and of the library bundle. */
  readonly bytes: number;
  readonly libraryBytes: number;
}

/** Bundles the page into `outDir` (created if needed). Fails if browser code reaches a Node-only module. */
export async function buildWeb(outDir = join(ROOT, 'dist', 'web')): Promise<WebBuild> {
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { app: 'web/main.ts', worker: 'web/worker.ts', ladder: 'src/web.ts' },
    outdir: outDir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    metafile: true,
    logLevel: 'silent',
    legalComments: 'linked',
  }).catch((err: Error) => {
    throw new Error(`building the web page failed: ${err.message}`);
  });
  await mkdir(join(outDir, 'wasm'), { recursive: true });
  for (const file of STATIC_FILES) await copyFile(join(ROOT, 'web', file), join(outDir, file));
  const wasmDir = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'));
  for (const file of WASM_FILES) await copyFile(join(wasmDir, file), join(outDir, 'wasm', file));
  const outputs = Object.entries(result.metafile.outputs).filter(([name]) => name.endsWith('.js'));
  const isLibrary = (name: string): boolean => name.endsWith(`/${LIBRARY_BUNDLE}`);
  return {
    outDir,
    inputs: Object.keys(result.metafile.inputs),
    bytes: outputs.filter(([name]) => !isLibrary(name)).reduce((sum, [, o]) => sum + o.bytes, 0),
    libraryBytes: outputs.filter(([name]) => isLibrary(name)).reduce((sum, [, o]) => sum + o.bytes, 0),
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = await buildWeb(process.argv[2]);
  process.stdout.write(
    `web page built into ${relative(process.cwd(), out.outDir) || '.'} (${(out.bytes / 1e6).toFixed(1)} MB of JS); ` +
      `browser entry ${LIBRARY_BUNDLE}: ${(out.libraryBytes / 1e6).toFixed(2)} MB minified\n`,
  );
}
