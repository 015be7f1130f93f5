// `ladder serve`'s HTTP server (node:http): the built page, the model folders' files and GET /api/models.
// Loopback only unless told otherwise; nothing it serves refers to anything outside it.
import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CARD_FILE, CONFIG_FILE, WEIGHTS_FILE } from '../models/folder.js';
import { ModelIndexer } from './model-index.js';
import type { ModelEntry, ModelIndex } from './protocol.js';

/** Where `npm run build:web` puts the page (src/serve and dist/serve both sit two levels below the root). */
export const DEFAULT_WEB_DIR = fileURLToPath(new URL('../../dist/web/', import.meta.url));
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.safetensors': 'application/octet-stream',
};
// Only a model folder's own files are served, never its checkpoints or logs.
const MODEL_FILES = new Set([CONFIG_FILE, WEIGHTS_FILE, CARD_FILE]);
const MAX_LOG_BODY = 8192;

const HEADERS = {
  // Cross-origin isolation lets wasm use threads (SharedArrayBuffer).
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  // The page may load and connect to this server only (the worker's wasm threads start from blob: URLs).
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' blob:; worker-src 'self' blob:; img-src 'self' data: blob:",
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-cache',
};

export interface ServeOptions {
  /** Folder of model folders (models/<dataset>/<name>). */
  readonly modelsDir: string;
  /** Built page (default DEFAULT_WEB_DIR). */
  readonly webDir?: string;
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port?: number;
  /** Receives one line per event worth a user's attention (default: stderr). */
  readonly log?: (line: string) => void;
}

export interface LadderServer {
  /** e.g. http://127.0.0.1:8080/ */
  readonly url: string;
  readonly port: number;
  /** The model index as GET /api/models gives it now (problems are logged). */
  listModels(): Promise<ModelEntry[]>;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { ...HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** `path` (URL-decoded, may hold ..) resolved inside `root`, or undefined when it escapes. */
function inside(root: string, path: string): string | undefined {
  const full = resolve(root, `.${path.startsWith('/') ? path : `/${path}`}`);
  return full === root || full.startsWith(root.endsWith(sep) ? root : root + sep) ? full : undefined;
}

async function sendFile(req: IncomingMessage, res: ServerResponse, file: string | undefined): Promise<void> {
  const info = file === undefined ? undefined : await stat(file).catch(() => undefined);
  if (file === undefined || info === undefined || !info.isFile()) return send(res, 404, 'not found\n');
  res.writeHead(200, {
    ...HEADERS,
    'Content-Type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
    'Content-Length': info.size,
  });
  if (req.method === 'HEAD') return void res.end();
  await new Promise<void>((done) => {
    createReadStream(file)
      .on('error', () => {
        res.destroy();
        done();
      })
      .on('end', done)
      .pipe(res);
  });
}

async function readBody(req: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > MAX_LOG_BODY) throw new Error(`log message over ${MAX_LOG_BODY} bytes`);
  }
  return body;
}

/**
 * Starts the server. Fails with a message naming the fix when the models folder or the built page is missing
 * or the port is taken. Request errors are logged and answered; they never stop the server.
 */
export async function startServer(opts: ServeOptions): Promise<LadderServer> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`ladder serve: ${line}\n`));
  const modelsDir = resolve(opts.modelsDir);
  const webDir = resolve(opts.webDir ?? DEFAULT_WEB_DIR);
  const host = opts.host ?? DEFAULT_HOST;
  const port = opts.port ?? DEFAULT_PORT;
  if (!existsSync(modelsDir)) {
    throw new Error(
      `models folder ${modelsDir} does not exist: pass --models <dir> with model folders in it`,
    );
  }
  if (!existsSync(join(webDir, 'index.html'))) {
    throw new Error(
      `the web page is not built (${join(webDir, 'index.html')} is missing): run \`npm run build:web\``,
    );
  }
  const indexer = new ModelIndexer(modelsDir, log);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      return send(res, 400, 'bad path encoding\n');
    }
    if (path === '/api/log' && req.method === 'POST') {
      let message: unknown;
      try {
        message = (JSON.parse(await readBody(req)) as { message?: unknown }).message;
      } catch (err) {
        return send(res, 400, `expected JSON {"message": "..."}: ${(err as Error).message}\n`);
      }
      log(`page: ${typeof message === 'string' ? message.slice(0, 2000) : '(no message)'}`);
      return send(res, 204, '');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n');
    if (path === '/api/models') {
      const index: ModelIndex = { models: await indexer.list() };
      return send(res, 200, JSON.stringify(index), CONTENT_TYPES['.json']);
    }
    if (path.startsWith('/models/')) {
      const file = inside(modelsDir, path.slice('/models'.length));
      return sendFile(req, res, file !== undefined && MODEL_FILES.has(basename(file)) ? file : undefined);
    }
    return sendFile(req, res, inside(webDir, path === '/' ? '/index.html' : path));
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log(`${req.method} ${req.url}: ${(err as Error).message}`);
      if (!res.headersSent) send(res, 500, `server error: ${(err as Error).message}\n`);
      else res.destroy();
    });
  });
  await new Promise<void>((ready, fail) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') {
        fail(
          new Error(
            `port ${port} on ${host} is already in use: stop the program using it or pick another with --port`,
          ),
        );
      } else if (err.code === 'EACCES') {
        fail(
          new Error(
            `not allowed to listen on port ${port} (ports below 1024 need privileges): pick another with --port`,
          ),
        );
      } else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') {
        fail(
          new Error(
            `cannot listen on host ${host} (${err.code}): use an address of this machine, e.g. 127.0.0.1`,
          ),
        );
      } else fail(err);
    });
    server.listen(port, host, ready);
  });
  server.on('error', (err) => log(`server error: ${err.message}`));
  const actual = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${actual}/`,
    port: actual,
    listModels: () => indexer.list(),
    close: () =>
      new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }),
  };
}
