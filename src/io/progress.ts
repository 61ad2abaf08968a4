/**
 * Progress reporting for long work (downloads, attack steps) on stderr, so stdout stays clean
 * for results and --json. On a terminal the line is redrawn in place; otherwise (CI logs, pipes)
 * one summary line is printed at the end. IMMUNIZE_QUIET=1 silences it.
 */
export interface ProgressOptions {
  label: string;
  /** Total amount of work, or 0/undefined when unknown. */
  total?: number;
  unit: 'B' | 'step';
  /** Defaults to process.stderr. */
  stream?: NodeJS.WriteStream;
}

export interface Progress {
  update(done: number, extra?: string): void;
  done(extra?: string): void;
}

/** One progress update, as seen by a listener (the API's job runner forwards these as SSE events). */
export interface ProgressEvent {
  label: string;
  unit: ProgressOptions['unit'];
  done: number;
  total: number;
  extra: string;
}

let listener: ((e: ProgressEvent) => void) | null = null;

/** Receives every update of every progress bar in this process (null removes it); bars still draw as usual. */
export function setProgressListener(fn: ((e: ProgressEvent) => void) | null): void {
  listener = fn;
}

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}

function amount(n: number, unit: ProgressOptions['unit']): string {
  return unit === 'B' ? formatBytes(n) : String(n);
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

export function createProgress(o: ProgressOptions): Progress {
  const stream = o.stream ?? process.stderr;
  const quiet = process.env['IMMUNIZE_QUIET'] === '1';
  const tty = stream.isTTY === true;
  const start = performance.now();
  const total = o.total ?? 0;
  let last = -Infinity,
    lastDone = 0,
    lastExtra = '',
    finished = false;

  const line = (done: number, extra: string): string => {
    const elapsed = performance.now() - start;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const width = 24;
    const bar = total > 0 ? `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '.')}] ` : '';
    const count = total > 0 ? `${amount(done, o.unit)}/${amount(total, o.unit)}` : amount(done, o.unit);
    const rate =
      elapsed > 0 && done > 0
        ? o.unit === 'B'
          ? `${formatBytes((done / elapsed) * 1000)}/s`
          : `${((done / elapsed) * 1000).toFixed(2)} ${o.unit}/s`
        : '';
    const eta = total > 0 && done > 0 && done < total ? ` eta ${duration((elapsed / done) * (total - done))}` : '';
    return `${o.label} ${bar}${count} ${rate}${eta} ${duration(elapsed)}${extra ? `  ${extra}` : ''}`;
  };

  return {
    update(done, extra = '') {
      lastDone = done;
      lastExtra = extra;
      listener?.({ label: o.label, unit: o.unit, done, total, extra });
      if (quiet || !tty || finished) return;
      const now = performance.now();
      if (now - last < 100 && done < total) return; // at most 10 redraws a second
      last = now;
      stream.write(`\r\x1b[2K${line(done, extra)}`);
    },
    done(extra) {
      if (finished) return;
      finished = true;
      if (quiet) return;
      const text = line(total > 0 && o.unit === 'step' ? lastDone : lastDone, extra ?? lastExtra);
      stream.write(tty ? `\r\x1b[2K${text}\n` : `${text}\n`);
    },
  };
}
