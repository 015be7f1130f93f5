// Builds the libtorch addon (native/ -> native/build/Release/ladder_torch.node) with node-gyp.
// Without libtorch it prints one notice and exits 0, so installs on machines without it still work.
// Usage: node scripts/build-native.mjs [--optional]   (LIBTORCH=/path/with/include+lib overrides discovery)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const optional = process.argv.includes('--optional');

/** Prints one line and exits: 0 for "skipped", 1 for a real failure (0 with --optional). */
function stop(message, failed) {
  console.log(`build:native: ${message}`);
  process.exit(failed && !optional ? 1 : 0);
}

/** Finds libtorch headers and libraries: $LIBTORCH (a libtorch or python torch dir) or Debian's libtorch-dev. */
function findLibtorch() {
  const explicit = process.env.LIBTORCH;
  if (explicit) {
    const base = resolve(explicit);
    if (!existsSync(join(base, 'include', 'ATen', 'ATen.h'))) {
      stop(
        `LIBTORCH=${explicit} has no include/ATen/ATen.h; point it at a libtorch dir with include/ and lib/`,
        true,
      );
    }
    if (!existsSync(join(base, 'lib', 'libtorch.so')))
      stop(`LIBTORCH=${explicit} has no lib/libtorch.so`, true);
    return {
      includeDirs: [join(base, 'include'), join(base, 'include', 'torch', 'csrc', 'api', 'include')],
      libDir: join(base, 'lib'),
      cmakeConfig: join(base, 'share', 'cmake', 'Torch', 'TorchConfig.cmake'),
    };
  }
  const libDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib'];
  const libDir = libDirs.find((d) => existsSync(join(d, 'libtorch.so')));
  if (!existsSync('/usr/include/ATen/ATen.h') || libDir === undefined) return undefined;
  return {
    includeDirs: ['/usr/include', '/usr/include/torch/csrc/api/include'],
    libDir,
    cmakeConfig: join(libDir, 'cmake', 'Torch', 'TorchConfig.cmake'),
  };
}

/** libtorch builds pin the libstdc++ ABI (older pip wheels use the pre-C++11 one); match it. */
function abiFlag(torch) {
  if (existsSync(torch.cmakeConfig)) {
    const m = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(readFileSync(torch.cmakeConfig, 'utf8'));
    if (m) return `-D_GLIBCXX_USE_CXX11_ABI=${m[1]}`;
  }
  // Newer configs omit it: the exported symbols tell (std::__cxx11 names exist only with ABI 1).
  const nm = spawnSync('nm', ['-D', '--defined-only', join(torch.libDir, 'libc10.so')], { encoding: 'utf8' });
  if (nm.status !== 0 || !nm.stdout.includes('c10')) return '';
  return `-D_GLIBCXX_USE_CXX11_ABI=${nm.stdout.includes('__cxx11') ? 1 : 0}`;
}

/** Recent libtorch (2.10+) headers need C++20; older ones build as C++17. */
function cxxStandard(torch) {
  const aten = torch.includeDirs.map((d) => join(d, 'ATen', 'ATen.h')).find((f) => existsSync(f));
  const needs20 = aten !== undefined && readFileSync(aten, 'utf8').includes('C++20');
  return needs20 ? '-std=c++20' : '-std=c++17';
}

/** node-gyp: the copy bundled with npm, else one on PATH. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_execpath)
    candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules'));
  const prefix = dirname(dirname(realpathSync(process.execPath)));
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules'));
  for (const dir of candidates) {
    const script = join(dir, 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(script)) return [process.execPath, script];
  }
  const probe = spawnSync('node-gyp', ['--version'], { stdio: 'ignore' });
  return probe.status === 0 ? ['node-gyp'] : undefined;
}

const torch = findLibtorch();
if (torch === undefined) {
  stop(
    'libtorch not found (apt-get install libtorch-dev, or set LIBTORCH=/path/to/libtorch); skipping the torch addon',
    false,
  );
}
const gyp = findNodeGyp();
if (gyp === undefined) stop('node-gyp not found (it ships with npm); skipping the torch addon', true);

const hasCuda = existsSync(join(torch.libDir, 'libtorch_cuda.so'));
const libs = ['-ltorch', '-ltorch_cpu', '-lc10', ...(hasCuda ? ['-ltorch_cuda', '-lc10_cuda'] : [])];
const env = {
  ...process.env,
  LADDER_TORCH_INCLUDE_DIRS: torch.includeDirs.join(' '),
  LADDER_TORCH_CXXFLAGS: [cxxStandard(torch), abiFlag(torch)].filter((f) => f !== '').join(' '),
  // --no-as-needed keeps libtorch_cuda linked although no symbol of it is referenced directly.
  LADDER_TORCH_LDFLAGS: [
    `-L${torch.libDir}`,
    `-Wl,-rpath,${torch.libDir}`,
    '-Wl,--no-as-needed',
    ...libs,
  ].join(' '),
};
const nodeHeaders = dirname(dirname(realpathSync(process.execPath)));
const extra = existsSync(join(nodeHeaders, 'include', 'node', 'node_api.h'))
  ? [`--nodedir=${nodeHeaders}`]
  : [];

console.log(`build:native: building against ${torch.libDir}${hasCuda ? ' (CUDA)' : ''}`);
for (const step of [
  ['configure', ...extra],
  ['build', '--jobs', 'max', ...extra],
]) {
  step.push('--loglevel=warn');
  const [cmd, ...pre] = gyp;
  const r = spawnSync(cmd, [...pre, ...step], { cwd: join(root, 'native'), env, stdio: 'inherit' });
  if (r.status !== 0) stop(`node-gyp ${step[0]} failed (see output above)`, true);
}
console.log('build:native: built native/build/Release/ladder_torch.node');
warnOnReferenceBlas(torch);

/**
 * A libtorch that takes its BLAS from the system (Debian's) runs matrix products through whatever libblas.so.3
 * resolves to; the reference BLAS is many times slower than OpenBLAS there, so say how to get the fast one.
 */
function warnOnReferenceBlas(found) {
  const ldd = spawnSync('ldd', [join(found.libDir, 'libtorch_cpu.so')], { encoding: 'utf8' });
  const blas = /libblas\.so\.3 => (\/\S+)/.exec(ldd.stdout ?? '')?.[1];
  if (blas === undefined || !existsSync(blas)) return; // its own BLAS (pip wheels: MKL), or none found
  const target = realpathSync(blas);
  // Debian's reference BLAS lives in .../blas/; OpenBLAS, BLIS and ATLAS in folders named after them.
  if (!/\/blas\/libblas/.test(target)) return;
  console.log(
    `build:native: warning: libtorch's BLAS is ${target}, the reference BLAS: matrix products run many times ` +
      'slower; apt-get install libopenblas0-openmp',
  );
}
