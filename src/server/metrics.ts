/** A small Prometheus registry (text format 0.0.4): counters, gauges and one histogram kind. */

type Labels = Record<string, string>;

function key(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]!.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
}

export const DURATION_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800];

export class Metrics {
  private counters = new Map<string, { help: string; values: Map<string, number> }>();
  private histograms = new Map<
    string,
    { help: string; values: Map<string, { buckets: number[]; sum: number; count: number }> }
  >();

  counter(name: string, help: string, labels: Labels = {}, by = 1): void {
    const c = this.counters.get(name) ?? { help, values: new Map() };
    this.counters.set(name, c);
    const k = key(labels);
    c.values.set(k, (c.values.get(k) ?? 0) + by);
  }

  observe(name: string, help: string, labels: Labels, seconds: number): void {
    const h = this.histograms.get(name) ?? { help, values: new Map() };
    this.histograms.set(name, h);
    const k = key(labels);
    const v = h.values.get(k) ?? { buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 };
    DURATION_BUCKETS.forEach((b, i) => {
      if (seconds <= b) v.buckets[i]!++;
    });
    v.sum += seconds;
    v.count++;
    h.values.set(k, v);
  }

  /** The exposition text, with `gauges` computed by the caller at scrape time. */
  render(gauges: { name: string; help: string; values: [Labels, number][] }[]): string {
    const out: string[] = [];
    const brace = (k: string): string => (k === '' ? '' : `{${k}}`);
    for (const [name, c] of this.counters) {
      out.push(`# HELP ${name} ${c.help}`, `# TYPE ${name} counter`);
      for (const [k, v] of c.values) out.push(`${name}${brace(k)} ${v}`);
    }
    for (const [name, h] of this.histograms) {
      out.push(`# HELP ${name} ${h.help}`, `# TYPE ${name} histogram`);
      for (const [k, v] of h.values) {
        const pre = k === '' ? '' : `${k},`;
        DURATION_BUCKETS.forEach((b, i) => out.push(`${name}_bucket{${pre}le="${b}"} ${v.buckets[i]}`));
        out.push(
          `${name}_bucket{${pre}le="+Inf"} ${v.count}`,
          `${name}_sum${brace(k)} ${v.sum}`,
          `${name}_count${brace(k)} ${v.count}`,
        );
      }
    }
    for (const g of gauges) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
      for (const [l, v] of g.values) out.push(`${g.name}${brace(key(l))} ${v}`);
    }
    return out.join('\n') + '\n';
  }
}
