/**
 * The evaluation report: one self-contained HTML page (no script, no network — a
 * Content-Security-Policy forbids any fetch) with the Table-6-style summary, every metric, the
 * CLIP similarity with IQR bars, protection-versus-purification curves for sweeps, metric
 * distributions and per-item image grids. Images are copied next to the page (images/) and
 * referenced relatively, or embedded as data: URIs; `verifyReportAssets` checks every reference.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ImmunizeError } from '../errors.js';
import { writeFileAtomic as writeAtomic } from '../io/atomic.js';
import type { EvaluationResults, ItemResult, VariantAggregate } from './protocol.js';
import type { Summary } from './stats.js';
import { boxPlot, esc, iqrBars, lineChart, type Series } from './svg.js';

export interface ReportOptions {
  /** Embed images as data: URIs (one file) instead of copying them into DIR/images/. */
  embedImages?: boolean;
}

/** The paper's Table 6 columns (Salman et al. 2023): FID, PR, SSIM, PSNR, VIFp, FSIM. */
const TABLE6 = ['psnr', 'ssim', 'vif_p', 'fsim'] as const;

const LABELS: Record<string, string> = {
  psnr: 'PSNR',
  ssim: 'SSIM',
  multi_scale_ssim: 'MS-SSIM',
  vif_p: 'VIFp',
  fsim: 'FSIM',
  srsim: 'SR-SIM',
  gmsd: 'GMSD',
  multi_scale_gmsd: 'MS-GMSD',
  vsi: 'VSI',
  dss: 'DSS',
  haarpsi: 'HaarPSI',
  mdsi: 'MDSI',
};

const COLORS: Record<string, string> = { clean: '#6b7280', noise: '#d97706', encoder: '#2563eb', diffusion: '#059669' };
const EXTRA_COLORS = ['#7c3aed', '#db2777', '#0891b2', '#65a30d', '#b91c1c'];

function colorOf(method: string, methods: string[]): string {
  return (
    COLORS[method] ??
    EXTRA_COLORS[Math.max(0, methods.filter((m) => COLORS[m] === undefined).indexOf(method)) % EXTRA_COLORS.length]!
  );
}

function methodLabel(m: string): string {
  return m === 'noise' ? 'random noise (baseline)' : m === 'clean' ? 'clean' : m;
}

function num(v: number | null | undefined, digits: number): string {
  if (v === null || v === undefined) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : v < 0 ? '−∞' : 'NaN';
  return v.toFixed(digits);
}

/** FID of near-identical sets is tiny (and can be −1e-12 from rounding): keep 3 significant digits there. */
function fidText(v: number | null): string {
  if (v === null) return '–';
  return Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

function digitsFor(metric: string): number {
  return metric === 'psnr' ? 2 : 3;
}

function meanStd(s: Summary | null | undefined, digits: number): string {
  return s ? `${num(s.mean, digits)} <span class="pm">± ${num(s.std, digits)}</span>` : '–';
}

/** Direction of "more protection": the edit of an immunized image should be far from the clean edit. */
function protectionArrow(better: 'higher' | 'lower'): string {
  return better === 'higher' ? '↓' : '↑';
}

export async function writeReport(results: EvaluationResults, dir: string, o: ReportOptions = {}): Promise<string> {
  const out = resolve(dir);
  mkdirSync(out, { recursive: true });
  const images = new Map<string, string>();
  const src = (file: string, sha: string): string => {
    const known = images.get(sha);
    if (known !== undefined) return known;
    let ref: string;
    if (o.embedImages) {
      ref = `data:image/png;base64,${readFileSync(file).toString('base64')}`;
    } else {
      ref = `images/${sha.slice(0, 20)}.png`;
      mkdirSync(join(out, 'images'), { recursive: true });
      if (!existsSync(join(out, ref))) copyFileSync(file, join(out, ref));
    }
    images.set(sha, ref);
    return ref;
  };
  const html = renderReport(results, src);
  const page = join(out, 'index.html');
  writeAtomic(page, html);
  verifyReportAssets(page);
  return page;
}

/** Throws E_REPORT when the page references a file that is not there (or anything on the network). */
export function verifyReportAssets(page: string): { images: number; embedded: number } {
  const html = readFileSync(page, 'utf8');
  let images = 0,
    embedded = 0;
  for (const m of html.matchAll(/\s(?:src|href)="([^"]*)"/g)) {
    const ref = m[1]!;
    if (ref.startsWith('#')) continue;
    images++;
    if (ref.startsWith('data:')) {
      embedded++;
      continue;
    }
    if (/^[a-z][a-z0-9+.-]*:/i.test(ref) || ref.startsWith('//'))
      throw new ImmunizeError(
        'E_REPORT',
        `${page}: references '${ref.slice(0, 80)}', which is not a local file (the report must work offline)`,
      );
    if (!existsSync(join(dirname(page), decodeURIComponent(ref))))
      throw new ImmunizeError('E_REPORT', `${page}: references ${ref}, which does not exist`);
  }
  return { images, embedded };
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1180px;padding:0 16px;color:#1f2937}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #e5e7eb;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f9fafb}td.m,th.m{text-align:left}.pm{color:#6b7280;font-size:12px}tr.ref td{color:#6b7280;font-style:italic}
.meta{color:#4b5563}.notes li{color:#92400e}.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fff;border:1px solid #e5e7eb}
.chart .t{font-size:12px;font-weight:600}.chart .k{font-size:10px;fill:#374151}.chart .l{font-size:11px;fill:#374151}
.chart .g{stroke:#f3f4f6}.chart .a{stroke:#9ca3af}
.item{margin:18px 0;border:1px solid #e5e7eb;padding:10px;border-radius:6px}.grid td{text-align:center;vertical-align:top;border:none;padding:4px}
.grid img{width:160px;height:160px;object-fit:contain;image-rendering:auto;background:#f3f4f6;display:block;margin:auto}
.grid .cap{font-size:11px;color:#4b5563;white-space:normal;max-width:170px}.grid th{background:none;border:none;text-align:center}
details summary{cursor:pointer;color:#2563eb}.scroll{overflow-x:auto}code{background:#f3f4f6;padding:1px 4px;border-radius:3px}
`;

function renderReport(r: EvaluationResults, src: (file: string, sha: string) => string): string {
  const methods = r.methods;
  const s = r.settings;
  const metricInfo = new Map(r.metrics.map((m) => [m.name, m]));
  const parts: string[] = [];
  parts.push(`<!doctype html><html lang="en"><head><meta charset="utf-8">`);
  parts.push(
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' data: file:; style-src 'unsafe-inline'">`,
  );
  parts.push(
    `<meta name="viewport" content="width=device-width, initial-scale=1"><title>Immunize evaluation — ${esc(r.dataset.name)}</title><style>${CSS}</style></head><body>`,
  );
  parts.push(`<h1>Immunize evaluation — ${esc(r.dataset.name)}</h1>`);
  parts.push(
    `<p class="meta">${r.items.length} photo(s) at ${s.size}×${s.size}; edits: ${s.edit.steps} steps, guidance ${s.edit.guidance}, η ${s.edit.eta}, img2img strength ${s.edit.strength}${s.edit.scheduler ? `, ${esc(s.edit.scheduler)}` : ''}; ` +
      `immunization: ${esc(s.immunize.methods.join(', '))} (L∞ ${num(s.immunize.eps * 255, 1)}/255, ${s.immunize.steps} steps, preset ${esc(s.immunize.preset)}); ` +
      `models: img2img <code>${esc(s.models.img2img)}</code>, inpainting <code>${esc(s.models.inpaint)}</code>${s.models.clip ? `, CLIP <code>${esc(s.models.clip)}</code>` : ''}${s.models.inception ? `, Inception <code>${esc(s.models.inception)}</code> (${s.fid.dims}-d)` : ''}. ` +
      `Created ${esc(r.createdAt)}; protocol ${r.tool.protocol}; libtorch ${esc(r.tool.libtorch)}.</p>`,
  );
  parts.push(
    `<p>Every edit uses the same prompt and seed as the clean photo's edit and is compared with that clean edit. <b>Protection means the edit of the immunized photo is far from the clean edit</b>: lower PSNR/SSIM/VIFp/FSIM (↓), higher FID, lower precision. The random-noise baseline has the same L∞ budget.</p>`,
  );
  if (r.notes.length > 0)
    parts.push(
      `<section id="notes"><h2>Notes</h2><ul class="notes">${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul></section>`,
    );

  // ---- Table 6 ----
  const hasClip = r.variants.some((v) => r.aggregates[v.key]?.clip);
  const hasFid = r.variants.some((v) => r.aggregates[v.key]?.fid !== null || r.aggregates[v.key]?.precision !== null);
  const row = (a: VariantAggregate, cls = ''): string => {
    const cells = [
      `<td class="m"><span class="swatch" style="background:${colorOf(a.method, methods)}"></span>${esc(methodLabel(a.method))}${a.purification ? ` + <code>${esc(a.purification)}</code>` : ''}</td>`,
      `<td>${a.items}</td>`,
      ...(hasFid ? [`<td>${fidText(a.fid)}</td>`, `<td>${num(a.precision, 3)}</td>`] : []),
      ...TABLE6.map((m) => `<td>${meanStd(a.metrics[m], digitsFor(m))}</td>`),
      ...(hasClip
        ? [
            `<td>${a.clip ? `${num(a.clip.median, 3)} <span class="pm">[${num(a.clip.q1, 3)}, ${num(a.clip.q3, 3)}]</span>` : '–'}</td>`,
          ]
        : []),
    ];
    return `<tr${cls ? ` class="${cls}"` : ''} data-variant="${esc(a.key)}">${cells.join('')}</tr>`;
  };
  const head = `<tr><th class="m">method</th><th>n</th>${hasFid ? '<th>FID ↑</th><th>PR (precision) ↓</th>' : ''}${TABLE6.map((m) => `<th>${LABELS[m]} ↓</th>`).join('')}${hasClip ? '<th>CLIP sim. median [IQR]</th>' : ''}</tr>`;
  const ordered = r.variants.map((v) => r.aggregates[v.key]!).filter(Boolean);
  parts.push(`<section id="table6"><h2>Similarity of edits to the clean edit (Table 6 of Salman et al. 2023)</h2>`);
  parts.push(
    `<div class="scroll"><table id="summary"><thead>${head}</thead><tbody>${ordered.map((a) => row(a, a.key === 'clean' ? 'ref' : '')).join('')}</tbody></table></div>`,
  );
  parts.push(
    `<p class="meta">mean ± std (population) over items; the clean row compares the clean edit with itself (the ideal values). FID and precision compare each method's edits with the clean edits of the same items${hasFid ? '' : ' (not computed: see Notes)'}.</p></section>`,
  );

  // ---- every metric ----
  parts.push(
    `<section id="all-metrics"><h2>All full-reference metrics</h2><div class="scroll"><table id="metrics"><thead><tr><th class="m">method</th>${r.metrics.map((m) => `<th>${LABELS[m.name] ?? esc(m.name)} ${protectionArrow(m.better)}</th>`).join('')}</tr></thead><tbody>`,
  );
  for (const a of ordered) {
    parts.push(
      `<tr${a.key === 'clean' ? ' class="ref"' : ''}><td class="m">${esc(methodLabel(a.method))}${a.purification ? ` + <code>${esc(a.purification)}</code>` : ''}</td>${r.metrics.map((m) => `<td>${meanStd(a.metrics[m.name], digitsFor(m.name))}</td>`).join('')}</tr>`,
    );
  }
  parts.push(
    `</tbody></table></div><p class="meta">Arrows point to more protection (a less similar edit). piq conventions; PSNR of identical images is 80 dB (piq adds 1e-8 to the MSE).</p></section>`,
  );

  // ---- CLIP ----
  if (hasClip) {
    const groups = r.variants
      .filter((v) => v.purification === null && r.aggregates[v.key]?.clip)
      .map((v) => {
        const c = r.aggregates[v.key]!.clip!;
        return {
          label: v.method,
          color: colorOf(v.method, methods),
          median: c.median,
          q1: c.q1,
          q3: c.q3,
          mean: c.mean,
        };
      });
    parts.push(
      `<section id="clip"><h2>CLIP similarity between the edits and their prompts</h2><div class="charts">${iqrBars('CLIP image–prompt similarity (median, IQR)', 'cosine', groups)}</div>`,
    );
    parts.push(
      `<p class="meta">A protected photo's edits should follow the prompt less well than the clean photo's edits.</p></section>`,
    );
  }

  // ---- sweeps ----
  if (r.sweeps.length > 0) {
    parts.push(
      `<section id="sweeps"><h2>Protection after purification</h2><p>Each curve is a method's edits compared with the clean edit after the purification; the dashed line is the same method without purification. Where the curves meet the clean method's, the purification has removed the protection.</p>`,
    );
    for (const fam of r.sweeps) {
      const charts: string[] = [];
      const ys: { name: string; label: string; get: (a: VariantAggregate) => Summary | null }[] = [
        { name: 'psnr', label: 'PSNR to clean edit (dB)', get: (a) => a.metrics['psnr'] ?? null },
        { name: 'ssim', label: 'SSIM to clean edit', get: (a) => a.metrics['ssim'] ?? null },
        ...(hasClip ? [{ name: 'clip', label: 'CLIP similarity', get: (a: VariantAggregate) => a.clip }] : []),
      ];
      for (const yd of ys) {
        const series: Series[] = methods
          .map((m) => ({
            label: m,
            color: colorOf(m, methods),
            reference: m === 'clean' ? undefined : yd.get(r.aggregates[m]!)?.mean,
            points: fam.points.flatMap((p) => {
              const a = r.aggregates[`${m}@${p.spec}`];
              const sm = a ? yd.get(a) : null;
              return sm ? [{ x: p.x, y: sm.mean, lo: sm.mean - sm.std, hi: sm.mean + sm.std }] : [];
            }),
          }))
          .filter((sr) => sr.points.length > 0);
        charts.push(
          lineChart(`${yd.label} vs ${fam.key} ${fam.parameter}`, `${fam.key} ${fam.parameter}`, yd.label, series),
        );
      }
      parts.push(
        `<h3>${esc(fam.key)} (${esc(fam.parameter)})</h3><div class="charts" data-sweep="${esc(fam.key)}">${charts.join('')}</div>`,
      );
    }
    parts.push(`</section>`);
  }

  // ---- distributions ----
  parts.push(`<section id="distributions"><h2>Distributions over items</h2><div class="charts">`);
  const plain = r.variants.filter((v) => v.purification === null && v.method !== 'clean');
  for (const m of r.metrics) {
    const groups = plain.map((v) => ({
      label: v.method,
      color: colorOf(v.method, methods),
      values: r.items
        .map((it) => it.variants[v.key]?.metrics[m.name])
        .filter((x): x is number => typeof x === 'number' && Number.isFinite(x)),
    }));
    if (groups.every((g) => g.values.length === 0)) continue;
    parts.push(
      boxPlot(
        `${LABELS[m.name] ?? m.name} to the clean edit ${protectionArrow(m.better)}`,
        LABELS[m.name] ?? m.name,
        groups,
      ),
    );
  }
  if (hasClip) {
    const withClean = r.variants.filter((v) => v.purification === null);
    parts.push(
      boxPlot(
        'CLIP image–prompt similarity',
        'cosine',
        withClean.map((v) => ({
          label: v.method,
          color: colorOf(v.method, methods),
          values: r.items.map((it) => it.variants[v.key]?.clip).filter((x): x is number => typeof x === 'number'),
        })),
      ),
    );
  }
  parts.push(`</div></section>`);

  // ---- items ----
  parts.push(`<section id="items"><h2>Items</h2>`);
  for (const it of r.items) parts.push(renderItem(it, r, src, metricInfo.has('ssim')));
  parts.push(`</section>`);
  parts.push(
    `<footer class="meta"><p>Results: every number above is in the JSON results file (work folder <code>${esc(r.work.dir)}</code>). Generated by <code>immunize evaluate</code>.</p></footer>`,
  );
  parts.push(`</body></html>\n`);
  return parts.join('\n');
}

function caption(it: ItemResult, key: string, hasSsim: boolean): string {
  const v = it.variants[key];
  if (!v || key === 'clean') return 'the reference';
  const p = v.metrics['psnr'];
  const s = v.metrics['ssim'];
  return `PSNR ${num(p ?? null, 1)} dB${hasSsim ? `, SSIM ${num(s ?? null, 3)}` : ''}${v.clip !== null ? `, CLIP ${num(v.clip, 3)}` : ''}`;
}

function renderItem(
  it: ItemResult,
  r: EvaluationResults,
  src: (file: string, sha: string) => string,
  hasSsim: boolean,
): string {
  const methods = r.methods.filter((m) => it.inputs[m] !== undefined);
  const img = (file: string, sha: string, alt: string): string =>
    `<img src="${esc(src(file, sha))}" alt="${esc(alt)}" title="${esc(alt)}">`;
  const inputCap = (m: string): string => {
    const i = it.inputs[m]!;
    return m === 'clean'
      ? 'source'
      : `L∞ ${num(i.linf255, 1)}/255, PSNR ${num(i.psnr, 1)} dB${i.origin === 'file' ? ' (file)' : ''}`;
  };
  const parts = [
    `<div class="item" id="item-${esc(it.id)}"><h3>${esc(it.id)} <span class="pm">${it.mode}, seed ${it.seed}</span></h3><p>prompt: “${esc(it.prompt)}”</p>`,
  ];
  parts.push(
    `<table class="grid"><thead><tr><th></th>${methods.map((m) => `<th>${esc(m === 'clean' ? 'clean' : methodLabel(m))}</th>`).join('')}</tr></thead><tbody>`,
  );
  parts.push(
    `<tr><th>image</th>${methods.map((m) => `<td>${img(it.inputs[m]!.file, it.inputs[m]!.sha256, `${it.id}: ${m === 'clean' ? 'source' : `${m} immunized`}`)}<div class="cap">${esc(inputCap(m))}</div></td>`).join('')}</tr>`,
  );
  parts.push(
    `<tr><th>edit</th>${methods
      .map((m) => {
        const v = it.variants[m]!;
        return `<td>${img(v.edit.file, v.edit.sha256, `${it.id}: edit of ${m === 'clean' ? 'the clean image' : m}`)}<div class="cap">${esc(caption(it, m, hasSsim))}</div></td>`;
      })
      .join('')}</tr></tbody></table>`,
  );
  if (Object.keys(it.skipped).length > 0)
    parts.push(
      `<p class="meta">${Object.entries(it.skipped)
        .map(([m, why]) => `${esc(m)}: ${esc(why)}`)
        .join('; ')}</p>`,
    );
  if (r.purifications.length > 0) {
    parts.push(
      `<details><summary>purified versions (${r.purifications.length})</summary><table class="grid"><thead><tr><th></th>${methods.map((m) => `<th>${esc(methodLabel(m))}</th>`).join('')}</tr></thead><tbody>`,
    );
    for (const p of r.purifications) {
      parts.push(
        `<tr><th><code>${esc(p)}</code></th>${methods
          .map((m) => {
            const v = it.variants[`${m}@${p}`];
            if (!v) return '<td>–</td>';
            return `<td>${img(v.edit.file, v.edit.sha256, `${it.id}: edit of ${m} after ${p}`)}<div class="cap">${esc(caption(it, v.key, hasSsim))}</div></td>`;
          })
          .join('')}</tr>`,
      );
    }
    parts.push(`</tbody></table></details>`);
  }
  parts.push(`</div>`);
  return parts.join('');
}
