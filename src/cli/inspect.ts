/**
 * `immunize inspect IMAGE`: reads the XMP label that `immunize protect` writes and says whether
 * the image was immunized, how and when. Exit 0 with the details when the label is there, 1 when
 * it is not. The label is metadata: it says how a file was made but proves nothing, and
 * re-encoding or metadata stripping removes it (docs/attacks.md).
 */
import { existsSync, readFileSync } from 'node:fs';
import { ImmunizeError } from '../errors.js';
import { probeImage } from '../io/images.js';
import { parseImmunizeXmp, type ImmunizeMarker } from '../io/xmp.js';
import { defineCommand, flags, onePositional } from './args.js';

const HELP = `Usage: immunize inspect IMAGE [--json]

Says whether IMAGE carries the "immunized" label that \`immunize protect\` writes (XMP metadata,
namespace immunize:) and prints what it records: method, budget ε, model, steps, date, version.
Exit code 0 when the label is there, 1 when it is not.

The label is only metadata: it cannot prove how an image was made, and re-encoding or
metadata stripping (most social networks do it) removes it while the perturbation may remain.

Options:
  --json      print one JSON object: { file, immunized, marker }
  -h, --help  this help`;

/** 16/255-style text for budgets that are whole numbers of 8-bit levels. */
export function fraction255(v: number): string {
  const k = v * 255;
  return Math.abs(k - Math.round(k)) < 1e-6 ? `${Math.round(k)}/255` : String(Number(v.toPrecision(6)));
}

function describeMarker(file: string, m: Partial<ImmunizeMarker>, sidecar: string | null): string {
  const rows: [string, string | undefined][] = [
    [
      'method',
      m.method === 'encoder'
        ? 'encoder attack (Salman et al. 2023, PGD)'
        : m.method === 'noise'
          ? 'random-noise baseline (not a protection; for comparison)'
          : m.method,
    ],
    [
      'budget',
      m.eps === undefined
        ? undefined
        : `ε = ${fraction255(m.eps)} (${m.eps.toFixed(4)}) on [0,1] pixels, ${m.norm === 'l2' ? 'L2' : 'L∞'}`,
    ],
    ['model', m.model ?? undefined],
    ['preset', m.preset ?? undefined],
    [
      'steps',
      m.steps === undefined || m.steps === 0
        ? undefined
        : `${m.stepsTaken ?? '?'} of ${m.steps}${m.stepSize ? `, step ${fraction255(m.stepSize)}` : ''}${m.optimizer ? `, ${m.optimizer}` : ''}`,
    ],
    ['seed', m.seed === undefined ? undefined : String(m.seed)],
    [
      'mask',
      m.masked === undefined ? undefined : m.masked ? 'yes (only part of the image was perturbed)' : 'no (whole image)',
    ],
    ['date', m.date],
    ['tool', m.tool === undefined ? undefined : `${m.tool} ${m.toolVersion ?? ''}`.trim()],
    ['sidecar', sidecar ?? undefined],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return [
    `${file}: immunized`,
    ...rows.filter(([, v]) => v !== undefined).map(([k, v]) => `  ${k.padEnd(width)}  ${v}`),
  ].join('\n');
}

export const command = defineCommand({
  summary: 'tell whether an image carries the "immunized" label and what it records',
  help: HELP,
  options: flags({ switches: 'json' }),
  async run({ values, positionals }) {
    const file = onePositional(positionals, 'image', 'immunize inspect IMAGE');
    if (!existsSync(file)) throw new ImmunizeError('E_NOT_FOUND', `image not found: ${file}`);
    const probe = await probeImage(file);
    const marker = parseImmunizeXmp(probe.xmp);
    const sidecarPath = file.replace(/\.[^./\\]+$/, '') + '.json';
    let sidecar: string | null = null;
    if (marker !== null && existsSync(sidecarPath)) {
      try {
        JSON.parse(readFileSync(sidecarPath, 'utf8'));
        sidecar = sidecarPath;
      } catch {
        /* not ours */
      }
    }
    if (values.json) {
      console.log(JSON.stringify({ file, immunized: marker !== null, marker, sidecar }));
    } else if (marker === null) {
      console.log(
        `${file}: no immunize label (${probe.xmp === null ? 'no XMP metadata' : 'XMP metadata without the immunize: namespace'}). Either it was not immunized by this tool, or its metadata was stripped (re-encoding, uploads) — the label cannot tell which.`,
      );
    } else {
      console.log(describeMarker(file, marker, sidecar));
    }
    return marker === null ? 1 : 0;
  },
});
