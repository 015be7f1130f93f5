// Progress for long work: a bar with rate and ETA on a terminal, plain periodic lines elsewhere (CI, logs).
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, info?: Record<string, string | number>): void;
  stop(): void;
}

const fmt = (v: string | number): string =>
  typeof v === 'number'
    ? Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3)
      ? v.toExponential(2)
      : v.toFixed(4).replace(/\.?0+$/, '')
    : v;

/** Progress that shows nothing (the ranks other than 0 of a data-parallel run). */
export const silentProgress: Progress = { update: () => undefined, stop: () => undefined };

/** A progress display for `total` units of `label`; `start` units may already be done (resumed work). */
export function createProgress(label: string, total: number, start = 0, stream = process.stderr): Progress {
  const began = Date.now();
  if (stream.isTTY && process.env.CI === undefined) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} |{bar}| {value}/{total} {rate} it/s ETA {eta_formatted} {info}`,
        stream,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, start, { rate: '-', info: '' });
    return {
      update(done, info = {}) {
        const rate = (done - start) / Math.max(1e-9, (Date.now() - began) / 1000);
        const text = Object.entries(info)
          .map(([k, v]) => `${k}=${fmt(v)}`)
          .join(' ');
        bar.update(done, { rate: rate.toFixed(2), info: text });
      },
      stop: () => bar.stop(),
    };
  }
  let lastPrint = 0;
  return {
    update(done, info = {}) {
      const now = Date.now();
      if (now - lastPrint < 10_000 && done < total) return; // a line every 10 s keeps CI logs short
      lastPrint = now;
      const rate = (done - start) / Math.max(1e-9, (now - began) / 1000);
      const eta = rate > 0 ? Math.round((total - done) / rate) : 0;
      const text = Object.entries(info)
        .map(([k, v]) => `${k}=${fmt(v)}`)
        .join(' ');
      stream.write(`${label} ${done}/${total} ${rate.toFixed(2)} it/s eta ${eta}s ${text}\n`);
    },
    stop() {},
  };
}
