/**
 * The "immunized" label carried inside image files as XMP (ISO 16684-1): an `immunize:`
 * namespace on the packet's rdf:Description, plus the standard xmp:CreatorTool. sharp writes
 * the packet (PNG: an iTXt chunk keyed `XML:com.adobe.xmp`, JPEG: APP1, WebP: an XMP chunk) and
 * reads it back from any of them.
 *
 * The label says how a file was made; it proves nothing. Anyone can write it, and re-encoding or
 * metadata stripping (most social networks) removes it. It is there so that a person who finds
 * the file can tell what was done to it.
 */

/**
 * The namespace URI. XMP only needs a unique identifier; a URN claims no web address that this
 * project does not own.
 */
export const IMMUNIZE_XMP_NS = 'urn:immunize:xmp:1.0/';
export const IMMUNIZE_XMP_PREFIX = 'immunize';

/** What the label records. Numbers are written as decimal text and read back as numbers. */
export interface ImmunizeMarker {
  /** Always "immunize" (the tool that wrote the label). */
  tool: string;
  toolVersion: string;
  /** encoder | noise | diffusion. */
  method: string;
  /** Budget on [0, 1] pixels. */
  eps: number;
  norm: string;
  /** The model the protection was computed against (null for the noise baseline). */
  model: string | null;
  preset: string | null;
  steps: number;
  stepsTaken: number;
  stepSize: number | null;
  optimizer: string | null;
  seed: number | null;
  /** Whether a mask limited the perturbation to part of the image. */
  masked: boolean;
  /** ISO 8601 time the image was immunized. */
  date: string;
}

const FIELDS: { key: keyof ImmunizeMarker; xmp: string; kind: 'string' | 'number' | 'boolean' }[] = [
  { key: 'tool', xmp: 'Tool', kind: 'string' },
  { key: 'toolVersion', xmp: 'ToolVersion', kind: 'string' },
  { key: 'method', xmp: 'Method', kind: 'string' },
  { key: 'eps', xmp: 'Epsilon', kind: 'number' },
  { key: 'norm', xmp: 'Norm', kind: 'string' },
  { key: 'model', xmp: 'Model', kind: 'string' },
  { key: 'preset', xmp: 'Preset', kind: 'string' },
  { key: 'steps', xmp: 'Steps', kind: 'number' },
  { key: 'stepsTaken', xmp: 'StepsTaken', kind: 'number' },
  { key: 'stepSize', xmp: 'StepSize', kind: 'number' },
  { key: 'optimizer', xmp: 'Optimizer', kind: 'string' },
  { key: 'seed', xmp: 'Seed', kind: 'number' },
  { key: 'masked', xmp: 'Masked', kind: 'boolean' },
  { key: 'date', xmp: 'Date', kind: 'string' },
];

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function unescapeXml(s: string): string {
  return s.replace(
    /&(lt|gt|quot|apos|amp|#(\d+)|#x([0-9a-fA-F]+));/g,
    (_, name: string, dec?: string, hex?: string) => {
      if (dec !== undefined) return String.fromCodePoint(Number(dec));
      if (hex !== undefined) return String.fromCodePoint(parseInt(hex, 16));
      return ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' } as Record<string, string>)[name]!;
    },
  );
}

/** A complete XMP packet carrying the label (and xmp:CreatorTool, which other tools display). */
export function buildImmunizeXmp(m: ImmunizeMarker): string {
  const attrs = FIELDS.filter((f) => m[f.key] !== null && m[f.key] !== undefined).map(
    (f) =>
      `\n    ${IMMUNIZE_XMP_PREFIX}:${f.xmp}="${escapeXml(f.kind === 'boolean' ? (m[f.key] ? 'True' : 'False') : String(m[f.key]))}"`,
  );
  return [
    '<?xpacket begin="\uFEFF" id="W5M0MpCehiHzreSzNTczkc9d"?>',
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">',
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">',
    `  <rdf:Description rdf:about=""\n    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n    xmlns:${IMMUNIZE_XMP_PREFIX}="${IMMUNIZE_XMP_NS}"`,
    `    xmp:CreatorTool="${escapeXml(`${m.tool} ${m.toolVersion}`)}"${attrs.join('')}/>`,
    ' </rdf:RDF>',
    '</x:xmpmeta>',
    '<?xpacket end="w"?>',
  ].join('\n');
}

/**
 * Finds the label in an XMP packet, whatever prefix the namespace is bound to and whether the
 * properties are attributes (as written here) or elements (as some editors rewrite them).
 * Returns null when the packet has no immunize namespace.
 */
export function parseImmunizeXmp(xmp: string | null | undefined): Partial<ImmunizeMarker> | null {
  if (!xmp) return null;
  const ns = IMMUNIZE_XMP_NS.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const bound = new RegExp(`xmlns:([A-Za-z_][\\w.-]*)\\s*=\\s*["']${ns}["']`).exec(xmp);
  if (bound === null) return null;
  const prefix = bound[1]!.replace(/[.-]/g, '\\$&');
  const out: Partial<ImmunizeMarker> = {};
  for (const f of FIELDS) {
    const attr = new RegExp(`${prefix}:${f.xmp}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`).exec(xmp);
    const elem = attr === null ? new RegExp(`<${prefix}:${f.xmp}>([^<]*)</${prefix}:${f.xmp}>`).exec(xmp) : null;
    const raw = attr ? (attr[1] ?? attr[2]) : elem ? elem[1] : undefined;
    if (raw === undefined) continue;
    const text = unescapeXml(raw);
    const value = f.kind === 'number' ? Number(text) : f.kind === 'boolean' ? /^true$/i.test(text) : text;
    (out as Record<string, unknown>)[f.key] = value;
  }
  return out;
}
