// `ladder serve`'s HTTP server (node:http): the built page, the model folders' files and GET /api/models.
// Loopback only unless told otherwise; nothing it serves refers to anything outside it. It answers only requests
// addressed to it by name (against DNS rebinding) and takes log reports only from its own page.
import { createReadStream, existsSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelIndexer, realPathInside } from './model-index.js';
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
const MAX_LOG_BODY = 8192;
// What the page's report to /api/log is sent as (a string body is text/plain).
const LOG_TYPES = new Set(['application/json', 'text/plain']);
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];
const WILDCARDS = new Set(['0.0.0.0', '::']);
// A Host header is a name or address and a port, nothing else (no user info, no path).
const HOST_HEADER = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(:\d{1,5})?$/i;
// A request target in origin form: one '/' then a path. An absolute one (`http://other/...`) names another host,
// which overrides the checked Host header, and URL parsing reads '//' or '/\' as the start of one.
const ORIGIN_FORM = /^\/(?![/\\])/;

const HEADERS = {
  // Cross-origin isolation lets wasm use threads (SharedArrayBuffer).
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  // The page may load and connect to this server only (the worker's wasm threads start from blob: URLs).
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' blob:; worker-src 'self' blob:; img-src 'self' data: blob:",
  // Other sites' pages may not embed or read anything served here (an <img> of a model file gets nothing).
  'Cross-Origin-Resource-Policy': 'same-origin',
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
  /** Receives one line per event worth a user's attention (default: stderr), control characters removed. */
  readonly log?: (line: string) => void;
  /** Host names besides the bound address (and, on loopback, localhost) that requests may be addressed to. */
  readonly allowedHosts?: readonly string[];
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

/** `line` safe for a terminal: line breaks and tabs become spaces, other C0, DEL and C1 characters go. */
function plainText(line: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  return line.replace(/[\r\n\t]+/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f]/g, '');
}

/** A Host header's name (as URLs write it, e.g. "[::1]") and port; undefined when not host[:port]. */
function hostAndPort(header: string | undefined): { name: string; port: number } | undefined {
  if (header === undefined || !HOST_HEADER.test(header)) return undefined;
  try {
    const url = new URL(`http://${header}`);
    return { name: url.hostname, port: Number(url.port || 80) };
  } catch {
    return undefined;
  }
}

/** An address or name as a Host header carries it: lowercase, IPv6 in brackets, as URLs normalise it. */
function hostName(address: string): string {
  const bracketed = address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
  return hostAndPort(bracketed)?.name ?? address.toLowerCase();
}

/**
 * Whether a request's Host header addresses this server: on its port, by the bound address, by localhost when
 * that is loopback, by any of the machine's addresses when bound to all of them, or by an allowed name.
 * A page on another site whose name was rebound to this machine's address sends its own name and is refused.
 */
export function isAllowedHost(
  header: string | undefined,
  bound: { readonly host: string; readonly port: number; readonly allowedHosts?: readonly string[] },
): boolean {
  const target = hostAndPort(header);
  if (target === undefined || target.port !== bound.port) return false;
  const host = hostName(bound.host);
  const names = new Set([host, ...(bound.allowedHosts ?? []).map(hostName)]);
  if (LOOPBACK_NAMES.includes(host) || host.startsWith('127.')) for (const n of LOOPBACK_NAMES) names.add(n);
  if (WILDCARDS.has(bound.host)) {
    names.add('localhost');
    for (const a of Object.values(networkInterfaces()).flatMap((list) => list ?? []))
      names.add(hostName(a.address));
  }
  return names.has(target.name);
}

/**
 * Whether a request comes from this server's own page: its Origin is the host it was sent to or, when it has
 * none, the browser says it is same-origin. Other sites can post here (text/plain needs no CORS preflight).
 */
function isSameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return req.headers['sec-fetch-site'] === 'same-origin';
  const target = hostAndPort(req.headers.host);
  try {
    const url = new URL(origin);
    return (
      url.protocol === 'http:' && url.hostname === target?.name && Number(url.port || 80) === target.port
    );
  } catch {
    return false;
  }
}

/** Sends `file` (a real path) or 404 without detail when it is undefined or not a file. */
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
  const write = opts.log ?? ((line: string) => process.stderr.write(`ladder serve: ${line}\n`));
  // Lines quote requests, the page's reports and file errors: nothing in them may drive the terminal.
  const log = (line: string) => write(plainText(line));
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
  const realWeb = await realpath(webDir);
  // Its port is known once listening (port 0 picks one); no request comes before.
  let bound = { host, port, allowedHosts: opts.allowedHosts ?? [] };

  /** A file of the built page; no dot-files, nothing a link takes outside it. */
  const webFile = (path: string): Promise<string | undefined> => {
    const segments = (path === '/' ? '/index.html' : path).split('/').slice(1);
    if (segments.some((s) => s === '' || s.startsWith('.'))) return Promise.resolve(undefined);
    return realPathInside(realWeb, join(webDir, ...segments));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!isAllowedHost(req.headers.host, bound)) {
      return send(res, 421, 'unknown Host: open the address ladder serve printed, or pass --allowed-host\n');
    }
    if (!ORIGIN_FORM.test(req.url ?? '')) return send(res, 400, 'the request target must be a path\n');
    const url = new URL(req.url ?? '/', 'http://localhost');
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      return send(res, 400, 'bad path encoding\n');
    }
    if (path === '/api/log' && req.method === 'POST') {
      if (!isSameOrigin(req)) return send(res, 403, 'only the page served here may report\n');
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (!LOG_TYPES.has(type)) return send(res, 415, 'expected a JSON or text body\n');
      let message: unknown;
      try {
        message = (JSON.parse(await readBody(req)) as { message?: unknown }).message;
      } catch {
        return send(res, 400, `expected JSON {"message": "..."} of at most ${MAX_LOG_BODY} bytes\n`);
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
      const segments = path.slice('/models/'.length).split('/');
      const name = segments.pop()!;
      return sendFile(req, res, await indexer.servedFile(segments.join('/'), name));
    }
    return sendFile(req, res, await webFile(path));
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // The details (paths, file errors) are for the terminal only.
      log(`${req.method} ${req.url}: ${(err as Error).message}`);
      if (!res.headersSent) send(res, 500, 'server error: see the terminal running ladder serve\n');
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
  bound = { ...bound, port: actual };
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
