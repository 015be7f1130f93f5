// Entry of the page bundle (app.js): everything lives in src/serve/page.ts, where tsc checks it.
import { startPage } from '../src/serve/page.js';

startPage().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  document.body.prepend(
    Object.assign(document.createElement('p'), { textContent: `the page failed: ${message}` }),
  );
});
