// Headless Chromium (Debian's, driven by playwright-core) for the page's end-to-end test and its benchmark.
// The browser may reach the local server only; any other request is blocked and recorded.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import type { BenchOptions, BenchResult } from './page.js';
import { isBroken, type ModelEntry, type ModelInfo } from './protocol.js';
import { type LadderServer, type ServeOptions, startServer } from './server.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];

export interface HeadlessBrowser {
  readonly context: BrowserContext;
  /** Requests to anywhere but `allowedOrigin` (blocked). */
  readonly offsiteRequests: string[];
  close(): Promise<void>;
}

/** Why Chromium cannot be driven here, or undefined when it can. */
export function chromiumMissing(executablePath = CHROMIUM_PATH): string | undefined {
  if (!existsSync(executablePath))
    return `no Chromium at ${executablePath}: install it with \`apt-get install chromium\``;
  return undefined;
}

/** Launches headless Chromium with a fresh profile that only reaches `allowedOrigin`. */
export async function launchChromium(
  allowedOrigin: string,
  executablePath = CHROMIUM_PATH,
): Promise<HeadlessBrowser> {
  const missing = chromiumMissing(executablePath);
  if (missing !== undefined) throw new Error(missing);
  let playwright: typeof import('playwright-core');
  try {
    playwright = await import('playwright-core');
  } catch {
    throw new Error('driving Chromium needs the playwright-core package (a dev dependency): run `npm ci`');
  }
  const profile = await mkdtemp(join(tmpdir(), 'ladder-chromium-'));
  const context = await playwright.chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 900 },
  });
  const offsiteRequests: string[] = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(allowedOrigin) || url.startsWith('blob:') || url.startsWith('data:'))
      return route.continue();
    offsiteRequests.push(url);
    return route.abort('blockedbyclient');
  });
  return {
    context,
    offsiteRequests,
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Opens the page and waits until its backend is chosen and its pickers are filled. */
export async function openPage(browser: HeadlessBrowser, url: string): Promise<Page> {
  const page = await browser.context.newPage();
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"], #errors li', { timeout: 60_000 });
  return page;
}

/** Launches Chromium confined to `server`'s origin and opens its page (`query` appended to the URL). */
export async function openServedPage(
  server: LadderServer,
  query = '',
  executablePath = CHROMIUM_PATH,
): Promise<{ browser: HeadlessBrowser; page: Page }> {
  const browser = await launchChromium(server.url.replace(/\/$/, ''), executablePath);
  try {
    return { browser, page: await openPage(browser, `${server.url}${query}`) };
  } catch (err) {
    await browser.close();
    throw err;
  }
}

export interface BrowserBenchOptions extends Omit<ServeOptions, 'port' | 'host'> {
  /** Force a backend (webgpu, webgl, wasm); default: the page's own choice. */
  readonly backend?: string;
  readonly batch: number;
  readonly seconds: number;
  readonly executablePath?: string;
  /** Called with each result as it is measured. */
  readonly onResult?: (result: BenchResult & { backend: string }) => void;
}

/**
 * What to measure: each teacher at 32 steps, each student made for 1 step at 1 step (PADD's intermediate stages
 * are not), or each teacher at 1 step when there is none.
 */
export function benchPlan(models: readonly ModelEntry[]): { path: string; steps: number }[] {
  const usable = models.filter((m): m is ModelInfo => !isBroken(m));
  const teachers = usable.filter((m) => m.kind === 'teacher');
  const students = usable.filter((m) => m.kind === 'student' && m.steps.includes(1));
  return [
    ...teachers.map((m) => ({ path: m.path, steps: 32 })),
    ...(students.length > 0 ? students : teachers).map((m) => ({ path: m.path, steps: 1 })),
  ];
}

/** Serves `modelsDir` on a free loopback port and measures images per second in headless Chromium. */
export async function benchBrowser(o: BrowserBenchOptions): Promise<(BenchResult & { backend: string })[]> {
  let server: LadderServer | undefined;
  let browser: HeadlessBrowser | undefined;
  try {
    server = await startServer({ ...o, port: 0 });
    const plan = benchPlan(await server.listModels());
    if (plan.length === 0) throw new Error(`no usable teacher or student under ${o.modelsDir}`);
    const query = o.backend === undefined ? '' : `?backend=${o.backend}`;
    let page: Page;
    ({ browser, page } = await openServedPage(server, query, o.executablePath));
    const errors = await page.locator('#errors li').allTextContents();
    if ((await page.getAttribute('body', 'data-ready')) !== 'true')
      throw new Error(`the page failed: ${errors.join('; ')}`);
    const backend = (await page.textContent('#backend'))?.replace(/^backend: /, '') ?? 'unknown';
    const results: (BenchResult & { backend: string })[] = [];
    for (const { path, steps } of plan) {
      const options: BenchOptions = { path, steps, batch: o.batch, seconds: o.seconds };
      const result = await page.evaluate(
        (opts) =>
          (window as unknown as { ladder: { bench(o: BenchOptions): Promise<BenchResult> } }).ladder.bench(
            opts,
          ),
        options,
      );
      results.push({ ...result, backend });
      o.onResult?.({ ...result, backend });
    }
    return results;
  } finally {
    await browser?.close();
    await server?.close();
  }
}
