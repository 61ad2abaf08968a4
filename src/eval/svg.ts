/**
 * Small inline-SVG charts for the report (no script, no fonts to fetch): distributions as box
 * plots with every value drawn, medians with IQR bars, and curves with ± std bands.
 */
import { quantile } from './stats.js';

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** About `n` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi - lo < 1e-12) {
    const d = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    lo -= d;
    hi += d;
  }
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function fmt(v: number, step?: number): string {
  if (step !== undefined && step > 0) {
    // Enough decimals to tell neighbouring ticks apart (0.9975, 0.9980, …).
    const d = Math.max(
      0,
      Math.min(8, -Math.floor(Math.log10(step) + 1e-9) + (step / 10 ** Math.floor(Math.log10(step)) === 2.5 ? 1 : 0)),
    );
    return v.toFixed(d);
  }
  const a = Math.abs(v);
  return a === 0 ? '0' : a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(2);
}

interface Frame {
  w: number;
  h: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function yScale(f: Frame, lo: number, hi: number): (v: number) => number {
  const [a, b] = hi - lo < 1e-12 ? [lo - 1, hi + 1] : [lo, hi];
  return (v) => f.top + (f.h - f.top - f.bottom) * (1 - (v - a) / (b - a));
}

function axes(f: Frame, ticks: number[], y: (v: number) => number, title: string, yLabel: string): string {
  const parts = [`<text x="${f.w / 2}" y="14" text-anchor="middle" class="t">${esc(title)}</text>`];
  parts.push(
    `<text transform="translate(11 ${(f.h - f.bottom + f.top) / 2}) rotate(-90)" text-anchor="middle" class="l">${esc(yLabel)}</text>`,
  );
  const step = ticks.length > 1 ? ticks[1]! - ticks[0]! : undefined;
  for (const t of ticks) {
    parts.push(
      `<line x1="${f.left}" x2="${f.w - f.right}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" class="g"/>`,
    );
    parts.push(
      `<text x="${f.left - 4}" y="${(y(t) + 3).toFixed(1)}" text-anchor="end" class="k">${fmt(t, step)}</text>`,
    );
  }
  parts.push(`<line x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${f.h - f.bottom}" class="a"/>`);
  parts.push(`<line x1="${f.left}" x2="${f.w - f.right}" y1="${f.h - f.bottom}" y2="${f.h - f.bottom}" class="a"/>`);
  return parts.join('');
}

function svg(f: Frame, body: string, label: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="${esc(label)}" width="${f.w}" height="${f.h}" viewBox="0 0 ${f.w} ${f.h}" class="chart">${body}</svg>`;
}

export interface BoxGroup {
  label: string;
  color: string;
  values: number[];
}

/** One box per group (quartiles, median, mean ◆) with every value as a dot. */
export function boxPlot(title: string, yLabel: string, groups: BoxGroup[]): string {
  const all = groups.flatMap((g) => g.values).filter(Number.isFinite);
  const f: Frame = { w: Math.max(240, 70 + 64 * groups.length), h: 220, left: 48, right: 10, top: 24, bottom: 46 };
  if (all.length === 0)
    return svg(
      f,
      `<text x="${f.w / 2}" y="${f.h / 2}" text-anchor="middle" class="l">${esc(title)}: no finite values</text>`,
      title,
    );
  const ticks = niceTicks(Math.min(...all), Math.max(...all));
  const y = yScale(f, Math.min(ticks[0]!, ...all), Math.max(ticks.at(-1)!, ...all));
  const step = (f.w - f.left - f.right) / groups.length;
  const body = [axes(f, ticks, y, title, yLabel)];
  groups.forEach((g, i) => {
    const cx = f.left + step * (i + 0.5);
    const v = g.values.filter(Number.isFinite);
    body.push(
      `<text x="${cx.toFixed(1)}" y="${f.h - f.bottom + 14}" text-anchor="middle" class="k">${esc(short(g.label))}</text>`,
    );
    if (v.length === 0) return;
    const [q1, med, q3] = [quantile(v, 0.25), quantile(v, 0.5), quantile(v, 0.75)];
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const bw = Math.min(36, step * 0.6);
    body.push(
      `<rect x="${(cx - bw / 2).toFixed(1)}" y="${y(q3).toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(1, y(q1) - y(q3)).toFixed(1)}" fill="${g.color}" fill-opacity="0.18" stroke="${g.color}"/>`,
    );
    body.push(
      `<line x1="${(cx - bw / 2).toFixed(1)}" x2="${(cx + bw / 2).toFixed(1)}" y1="${y(med).toFixed(1)}" y2="${y(med).toFixed(1)}" stroke="${g.color}" stroke-width="2"/>`,
    );
    v.forEach((val, k) => {
      // Deterministic jitter so overlapping values stay visible.
      const jx = cx + (((k * 7919) % 13) / 12 - 0.5) * bw * 0.8;
      body.push(
        `<circle cx="${jx.toFixed(1)}" cy="${y(val).toFixed(1)}" r="2.5" fill="${g.color}" fill-opacity="0.75"><title>${esc(`${g.label}: ${val}`)}</title></circle>`,
      );
    });
    body.push(
      `<path d="M${cx} ${(y(mean) - 4).toFixed(1)} l4 4 l-4 4 l-4 -4 z" fill="#fff" stroke="#222"><title>${esc(`${g.label} mean ${mean}`)}</title></path>`,
    );
  });
  return svg(f, body.join(''), title);
}

export interface IqrGroup {
  label: string;
  color: string;
  median: number;
  q1: number;
  q3: number;
  mean: number;
}

/** Bars at the median with whiskers from q1 to q3 (the paper's CLIP-similarity figure). */
export function iqrBars(title: string, yLabel: string, groups: IqrGroup[]): string {
  const f: Frame = { w: Math.max(260, 70 + 64 * groups.length), h: 230, left: 48, right: 10, top: 24, bottom: 56 };
  const vals = groups.flatMap((g) => [g.q1, g.q3, g.median, 0]).filter(Number.isFinite);
  const ticks = niceTicks(Math.min(...vals), Math.max(...vals));
  const y = yScale(f, Math.min(ticks[0] ?? 0, ...vals), Math.max(ticks.at(-1) ?? 1, ...vals));
  const step = (f.w - f.left - f.right) / Math.max(1, groups.length);
  const body = [axes(f, ticks, y, title, yLabel)];
  groups.forEach((g, i) => {
    const cx = f.left + step * (i + 0.5);
    const bw = Math.min(34, step * 0.6);
    const top = Math.min(y(g.median), y(0));
    body.push(
      `<rect x="${(cx - bw / 2).toFixed(1)}" y="${top.toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.abs(y(0) - y(g.median)).toFixed(1)}" fill="${g.color}" fill-opacity="0.55"><title>${esc(`${g.label}: median ${g.median}, IQR [${g.q1}, ${g.q3}]`)}</title></rect>`,
    );
    body.push(
      `<line x1="${cx}" x2="${cx}" y1="${y(g.q1).toFixed(1)}" y2="${y(g.q3).toFixed(1)}" stroke="#222" stroke-width="1.5"/>`,
    );
    for (const q of [g.q1, g.q3])
      body.push(
        `<line x1="${cx - 6}" x2="${cx + 6}" y1="${y(q).toFixed(1)}" y2="${y(q).toFixed(1)}" stroke="#222" stroke-width="1.5"/>`,
      );
    body.push(
      `<text transform="translate(${cx.toFixed(1)} ${f.h - f.bottom + 12}) rotate(20)" class="k">${esc(short(g.label))}</text>`,
    );
  });
  return svg(f, body.join(''), title);
}

export interface Series {
  label: string;
  color: string;
  points: { x: number; y: number; lo?: number; hi?: number }[];
  /** The value without purification, drawn as a dashed line. */
  reference?: number;
}

/** Curves over a swept parameter, with ± std bands and each method's unpurified value dashed. */
export function lineChart(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const f: Frame = { w: 380, h: 250, left: 50, right: 110, top: 24, bottom: 40 };
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series
    .flatMap((s) => [
      ...s.points.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]),
      ...(s.reference === undefined ? [] : [s.reference]),
    ])
    .filter(Number.isFinite);
  if (xs.length === 0 || ys.length === 0)
    return svg(
      f,
      `<text x="${f.w / 2}" y="${f.h / 2}" text-anchor="middle" class="l">${esc(title)}: no finite values</text>`,
      title,
    );
  const ticks = niceTicks(Math.min(...ys), Math.max(...ys));
  const y = yScale(f, Math.min(ticks[0]!, ...ys), Math.max(ticks.at(-1)!, ...ys));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const x = (v: number): number => f.left + (f.w - f.left - f.right) * (x1 === x0 ? 0.5 : (v - x0) / (x1 - x0));
  const body = [axes(f, ticks, y, title, yLabel)];
  for (const t of [...new Set(xs)])
    body.push(
      `<text x="${x(t).toFixed(1)}" y="${f.h - f.bottom + 13}" text-anchor="middle" class="k">${fmt(t)}</text>`,
    );
  body.push(
    `<text x="${(f.left + f.w - f.right) / 2}" y="${f.h - 6}" text-anchor="middle" class="l">${esc(xLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    const band = pts.filter(
      (p) => p.lo !== undefined && p.hi !== undefined && Number.isFinite(p.lo) && Number.isFinite(p.hi),
    );
    if (band.length >= 2) {
      const d = [
        ...band.map((p) => `${x(p.x).toFixed(1)},${y(p.hi!).toFixed(1)}`),
        ...[...band].reverse().map((p) => `${x(p.x).toFixed(1)},${y(p.lo!).toFixed(1)}`),
      ].join(' ');
      body.push(`<polygon points="${d}" fill="${s.color}" fill-opacity="0.12" stroke="none"/>`);
    }
    if (s.reference !== undefined && Number.isFinite(s.reference)) {
      body.push(
        `<line x1="${f.left}" x2="${f.w - f.right}" y1="${y(s.reference).toFixed(1)}" y2="${y(s.reference).toFixed(1)}" stroke="${s.color}" stroke-dasharray="4 3" stroke-opacity="0.7"/>`,
      );
    }
    body.push(
      `<polyline points="${pts.map((p) => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"/>`,
    );
    for (const p of pts)
      body.push(
        `<circle cx="${x(p.x).toFixed(1)}" cy="${y(p.y).toFixed(1)}" r="3" fill="${s.color}"><title>${esc(`${s.label} @ ${p.x}: ${p.y}`)}</title></circle>`,
      );
    const ly = f.top + 8 + i * 16;
    body.push(
      `<line x1="${f.w - f.right + 8}" x2="${f.w - f.right + 24}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/><text x="${f.w - f.right + 28}" y="${ly + 4}" class="k">${esc(short(s.label))}</text>`,
    );
  });
  return svg(f, body.join(''), title);
}

function short(s: string): string {
  return s.length > 18 ? `${s.slice(0, 17)}…` : s;
}
