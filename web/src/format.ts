/** Plain-language formatting of sizes, durations and measurements for the page, and the <dl> they go in. */
export { definitionList, fmtBytes, fmtDuration, fmtDb, fmtPixels };

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

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** "47 seconds", "3 minutes 5 seconds", "2 hours 10 minutes", "1 day": two units at most, no zero units. */
function fmtDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const units: [number, string][] = [
    [Math.floor(s / 86400), 'day'],
    [Math.floor(s / 3600) % 24, 'hour'],
    [Math.floor(s / 60) % 60, 'minute'],
    [s % 60, 'second'],
  ];
  const first = units.findIndex(([n]) => n > 0);
  if (first < 0) return '0 seconds';
  return units
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, u]) => plural(n, u))
    .join(' ');
}

function fmtDb(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return x === Infinity ? '∞ dB' : '—';
  return `${x.toFixed(1)} dB`;
}

/** Fills a <dl> with one term and one description per row (text only: nothing is parsed as HTML). */
function definitionList(el: HTMLElement, rows: [string, string][]): void {
  el.replaceChildren(
    ...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }),
  );
}
