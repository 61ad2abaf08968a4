/** Plain-language formatting of sizes, durations and measurements for the page. */
export { fmtBytes, fmtDuration, fmtDb, fmtPixels };

function fmtBytes(n: number): string {
  if (n < 1000) return `${n} bytes`;
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)} kB`;
  return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;
}

function fmtPixels(n: number): string {
  return n >= 1e6
    ? `${(n / 1e6).toFixed(n % 1e6 === 0 ? 0 : 1)} megapixels`
    : `${Math.round(n).toLocaleString('en')} pixels`;
}

function fmtDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

function fmtDb(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return x === Infinity ? '∞ dB' : '—';
  return `${x.toFixed(1)} dB`;
}
