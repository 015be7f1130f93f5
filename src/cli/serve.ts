// `ladder serve` (the real-time browser page) and `ladder bench-browser` (its throughput in headless Chromium).
import { type Command, InvalidArgumentError } from 'commander';
import { shippedModelsDirForCommands } from '../models/shipped.js';
import { benchBrowser, CHROMIUM_PATH } from '../serve/browser.js';
import { isBroken, WEB_BACKENDS } from '../serve/protocol.js';
import { DEFAULT_HOST, DEFAULT_PORT, DEFAULT_WEB_DIR, startServer } from '../serve/server.js';
import { int, oneOf, positive } from './options.js';

interface BenchBrowserFlags {
  readonly models: string;
  readonly webBackend?: string;
  readonly batch: number;
  readonly seconds: number;
  readonly chromium: string;
  readonly webDir: string;
}

const port = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError(`--port must be an integer from 0 to 65535, got "${value}"`);
  return n;
};
/** Collects --allowed-host, given once per name or as a comma list. */
const allowedHost = (value: string, previous: string[]): string[] => {
  const names = value.split(',').map((n) => n.trim());
  const bad = names.find((n) => !/^[a-z0-9._-]+$/i.test(n));
  if (bad !== undefined)
    throw new InvalidArgumentError(`--allowed-host takes host names without a port, got "${bad}"`);
  return [...previous, ...names];
};
const webBackend = oneOf('browser backend', WEB_BACKENDS);
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** Adds `serve` and `bench-browser` to the ladder command. */
export function registerServeCommands(program: Command): void {
  program
    .command('serve')
    .description('serve a page that generates continuously in the browser (TF.js: WebGPU, WebGL or wasm)')
    .option('--models <dir>', 'folder of model folders (<dataset>/<name>)', shippedModelsDirForCommands())
    .option('--port <n>', 'port to listen on (0: any free port)', port, DEFAULT_PORT)
    .option('--host <addr>', 'address to listen on (loopback by default)', DEFAULT_HOST)
    .option('--web-dir <dir>', 'the built page (npm run build:web)', DEFAULT_WEB_DIR)
    .option(
      '--allowed-host <name>',
      'another name the page may be opened by, e.g. a DNS name of this machine (repeatable, or a comma list)',
      allowedHost,
      [],
    )
    .action(
      async (o: { models: string; port: number; host: string; webDir: string; allowedHost: string[] }) => {
        const server = await startServer({
          modelsDir: o.models,
          port: o.port,
          host: o.host,
          webDir: o.webDir,
          allowedHosts: o.allowedHost,
        });
        const say = (line: string) => process.stderr.write(`ladder serve: ${line}\n`);
        if (!LOOPBACK.has(o.host)) {
          say(
            `listening on ${o.host}: other machines on the network can open the page by this machine's ` +
              'address, or by a name given with --allowed-host',
          );
        }
        const models = await server.listModels();
        const usable = models.filter((m) => !isBroken(m)).map((m) => m.path);
        say(`${usable.length} model(s) from ${o.models}: ${usable.join(', ') || 'none'}`);
        say(`open ${server.url} (Ctrl-C stops)`);
        await new Promise<void>((stop) => {
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        await server.close();
      },
    );

  program
    .command('bench-browser')
    .description(
      'print JSON lines: images per second in headless Chromium, each teacher at 32 steps and each student at 1',
    )
    .option('--models <dir>', 'folder of model folders (<dataset>/<name>)', shippedModelsDirForCommands())
    .option(
      '--web-backend <name>',
      `force the page's backend (${WEB_BACKENDS.join(', ')}); default: its own choice`,
      webBackend,
    )
    .option('--batch <n>', 'images per frame', int('--batch', 1), 16)
    .option('--seconds <s>', 'time per measurement (after one warm-up frame)', positive('--seconds'), 5)
    .option('--chromium <path>', 'Chromium executable', CHROMIUM_PATH)
    .option('--web-dir <dir>', 'the built page (npm run build:web)', DEFAULT_WEB_DIR)
    .action(async (o: BenchBrowserFlags) => {
      await benchBrowser({
        modelsDir: o.models,
        webDir: o.webDir,
        batch: o.batch,
        seconds: o.seconds,
        executablePath: o.chromium,
        ...(o.webBackend === undefined ? {} : { backend: o.webBackend }),
        onResult: (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
      });
    });
}
