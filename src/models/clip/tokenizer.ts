/**
 * CLIP's byte-level BPE tokenizer, as openai/CLIP's SimpleTokenizer and transformers'
 * CLIPTokenizer (4.27) compute it for Stable Diffusion: clean the text, lower-case it, split it
 * with CLIP's regex, map each piece's UTF-8 bytes to printable characters, apply the merges
 * with `</w>` marking word ends, and wrap the ids in <|startoftext|> … <|endoftext|>.
 *
 *   const tok = CLIPTokenizer.fromFolder('sd15/tokenizer');
 *   tok.call(['a photo of a cat']).inputIds   // [[49406, 320, 1125, 539, 320, 2368, 49407, 49407, …]]
 *   tok.inputIdsTensor(['a photo of a cat'])  // int64 [1, 77]
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ArgumentError, ImmunizeError, describe } from '../../errors.js';
import { tensor, type Device, type Tensor } from '../../torch/index.js';

export interface CLIPTokenizerOptions {
  /** Longest sequence the text model takes, specials included (tokenizer_config.json `model_max_length`; CLIP: 77). */
  modelMaxLength?: number;
  bosToken?: string;
  eosToken?: string;
  /** SD 1.x pads with '<|endoftext|>' (49407); SD 2.x's tokenizer pads with '!' (0). */
  padToken?: string;
  unkToken?: string;
}

export interface CallOptions {
  /** Default: the tokenizer's modelMaxLength (77). */
  maxLength?: number;
  /** 'max_length' pads every row to maxLength (what SD pipelines do); 'longest' to the longest row; false: no padding. */
  padding?: 'max_length' | 'longest' | false;
  /** Cut rows longer than maxLength, keeping <|endoftext|> last (default true). */
  truncation?: boolean;
}

export interface Encoding {
  inputIds: number[][];
  /** 1 for real tokens (specials included), 0 for padding, as transformers returns it. */
  attentionMask: number[][];
}

// transformers' CLIPTokenizer defaults (tokenization_clip.py): all three are '<|endoftext|>'.
const DEFAULTS = {
  bosToken: '<|startoftext|>',
  eosToken: '<|endoftext|>',
  padToken: '<|endoftext|>',
  unkToken: '<|endoftext|>',
};
// CLIP's context length (openai/CLIP clip.tokenize context_length=77; max_position_embeddings).
const CLIP_CONTEXT = 77;
// openai/CLIP and transformers read merges[1 : 49152 - 256 - 2 + 1]: the 48,894 merges that,
// with 2 × 256 byte symbols and 2 specials, make the 49,408-entry vocabulary.
const MAX_MERGES = 49152 - 256 - 2;
// Bounded, unlike the reference's dict: a long-running server sees unboundedly many words.
const CACHE_LIMIT = 50_000;
const SPECIALS = new Set(['<|startoftext|>', '<|endoftext|>']);

/**
 * openai/CLIP's pre-tokenizer (simple_tokenizer.py): the specials, English contractions, letter
 * runs, single digits, runs of other non-space symbols. `\p{White_Space}` is what the Python
 * `regex` module's `\s` means; JS `\s` would also match U+FEFF.
 */
const PATTERN =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\p{White_Space}\p{L}\p{N}]+/giu;

/** Python's str.isspace() set, which `re.sub(r'\s+', ' ', …)` and str.strip() use in basic_clean/whitespace_clean. */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'gu');
const EDGE_SPACE = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');

export class CLIPTokenizer {
  readonly modelMaxLength: number;
  readonly bosToken: string;
  readonly eosToken: string;
  readonly padToken: string;
  readonly unkToken: string;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  readonly unkTokenId: number;
  readonly #encoder: Map<string, number>;
  readonly #decoder: Map<number, string>;
  readonly #ranks: Map<string, number>;
  readonly #cache = new Map<string, string[]>();

  /**
   * @param vocab token → id (vocab.json)
   * @param merges merge rules in priority order, each "left right" (merges.txt without its header)
   */
  constructor(
    vocab: ReadonlyMap<string, number> | Readonly<Record<string, number>>,
    merges: readonly string[],
    o: CLIPTokenizerOptions = {},
  ) {
    this.#encoder = vocab instanceof Map ? new Map(vocab) : new Map(Object.entries(vocab));
    for (const [tok, id] of this.#encoder) {
      if (!Number.isSafeInteger(id) || id < 0)
        throw new ArgumentError(`vocabulary: id of '${tok}' must be a non-negative integer but is ${describe(id)}`);
    }
    this.#decoder = new Map([...this.#encoder].map(([k, v]) => [v, k]));
    this.#ranks = new Map();
    // dict(zip(merges, range(n))): a repeated rule keeps its last rank, as in the reference.
    merges.slice(0, MAX_MERGES).forEach((m, i) => this.#ranks.set(m, i));
    this.modelMaxLength = o.modelMaxLength ?? CLIP_CONTEXT;
    if (!Number.isSafeInteger(this.modelMaxLength) || this.modelMaxLength < 2) {
      throw new ArgumentError(
        `Expected modelMaxLength to be an integer >= 2 but received ${describe(o.modelMaxLength)}`,
      );
    }
    this.bosToken = o.bosToken ?? DEFAULTS.bosToken;
    this.eosToken = o.eosToken ?? DEFAULTS.eosToken;
    this.padToken = o.padToken ?? DEFAULTS.padToken;
    this.unkToken = o.unkToken ?? DEFAULTS.unkToken;
    const idOf = (role: string, tok: string) => {
      const id = this.#encoder.get(tok);
      if (id === undefined)
        throw new ImmunizeError('E_CONFIG', `tokenizer: the ${role} token '${tok}' is not in the vocabulary`);
      return id;
    };
    this.bosTokenId = idOf('bos', this.bosToken);
    this.eosTokenId = idOf('eos', this.eosToken);
    this.padTokenId = idOf('pad', this.padToken);
    this.unkTokenId = idOf('unk', this.unkToken);
  }

  /**
   * Reads `vocab.json` and `merges.txt` (+ optional `tokenizer_config.json` and
   * `special_tokens_map.json`) from a tokenizer folder, or from `tokenizer/` of a diffusers
   * pipeline folder.
   */
  static fromFolder(dir: string): CLIPTokenizer {
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      throw new ImmunizeError('E_MODEL_FILE', `tokenizer folder ${dir} does not exist or is not a folder`);
    const folder =
      !existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'tokenizer', 'vocab.json'))
        ? join(dir, 'tokenizer')
        : dir;
    const vocabPath = join(folder, 'vocab.json');
    const vocab = readJsonObject(vocabPath, true)!;
    for (const [k, v] of Object.entries(vocab)) {
      if (!Number.isSafeInteger(v) || (v as number) < 0)
        throw new ImmunizeError(
          'E_CONFIG',
          `${vocabPath}: entry '${k}' should map to a non-negative integer id but maps to ${describe(v)}`,
        );
    }
    const merges = readMerges(join(folder, 'merges.txt'));
    // transformers loads tokenizer_config.json into the constructor, then lets
    // special_tokens_map.json override the special tokens.
    const cfg = {
      ...readJsonObject(join(folder, 'tokenizer_config.json'), false),
      ...readJsonObject(join(folder, 'special_tokens_map.json'), false),
    };
    const token = (k: string): string | undefined => {
      const v = cfg[k];
      if (v === undefined || v === null) return undefined;
      if (typeof v === 'string') return v;
      if (typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string')
        return (v as { content: string }).content; // AddedToken
      throw new ImmunizeError('E_CONFIG', `${folder}: ${k} should be a string or {"content": …} but is ${describe(v)}`);
    };
    const mml = cfg['model_max_length'];
    // transformers writes int(1e30) when a tokenizer has no limit; CLIP's text model takes 77.
    const modelMaxLength =
      typeof mml === 'number' && Number.isSafeInteger(mml) && mml >= 2 && mml <= 1_000_000 ? mml : undefined;
    try {
      return new CLIPTokenizer(vocab as Record<string, number>, merges, {
        modelMaxLength,
        bosToken: token('bos_token'),
        eosToken: token('eos_token'),
        padToken: token('pad_token'),
        unkToken: token('unk_token'),
      });
    } catch (e) {
      if (e instanceof ImmunizeError) throw new ImmunizeError(e.code, `${folder}: ${e.message}`);
      throw e;
    }
  }

  get vocabSize(): number {
    return this.#encoder.size;
  }

  /**
   * openai/CLIP's basic_clean + whitespace_clean + lower(): HTML entities unescaped (twice, as
   * the reference does), whitespace runs collapsed to one space, ends stripped. ftfy.fix_text is
   * not applied (transformers also goes without it when ftfy is not installed).
   */
  normalize(text: string): string {
    if (typeof text !== 'string')
      throw new ArgumentError(`Expected text to be a string but received ${describe(text)}`);
    let s = htmlUnescape(htmlUnescape(text)).replace(EDGE_SPACE, '');
    s = s.replace(SPACE_RUN, ' ').replace(EDGE_SPACE, '');
    // Python's str.lower() and toLowerCase() both apply Unicode's full mappings, final sigma included.
    return s.toLowerCase();
  }

  /** BPE tokens (strings) of `text`, without the start/end specials. */
  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const m of this.normalize(text).matchAll(PATTERN)) {
      const piece = m[0];
      // The two specials are never split (openai/CLIP seeds its BPE cache with them).
      if (SPECIALS.has(piece)) out.push(piece);
      else for (const t of this.#bpe(byteEncode(piece))) out.push(t);
    }
    return out;
  }

  /** Token ids of `text`, without the start/end specials. */
  encode(text: string): number[] {
    return this.tokenize(text).map((t) => this.#encoder.get(t) ?? this.unkTokenId);
  }

  /** Text of `ids` (`</w>` becomes a space); specials are dropped unless `skipSpecialTokens` is false. */
  decode(ids: readonly number[], { skipSpecialTokens = true }: { skipSpecialTokens?: boolean } = {}): string {
    const specials = new Set([this.bosTokenId, this.eosTokenId, this.padTokenId]);
    const parts: string[] = [];
    for (const id of ids) {
      if (skipSpecialTokens && specials.has(id)) continue;
      const tok = this.#decoder.get(id);
      if (tok === undefined)
        throw new ArgumentError(`decode: id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      parts.push(tok);
    }
    return byteDecode(parts.join('')).replace(/<\/w>/g, ' ').trim();
  }

  /**
   * tokenizer(texts, padding='max_length', max_length=77, truncation=True) as transformers:
   * [bos] + ids + [eos] per text, cut to maxLength keeping eos last, padded with the pad token.
   */
  call(texts: string | readonly string[], o: CallOptions = {}): Encoding {
    const list = typeof texts === 'string' ? [texts] : texts;
    if (!Array.isArray(list))
      throw new ArgumentError(`Expected texts to be a string or an array of strings but received ${describe(texts)}`);
    const maxLength = o.maxLength ?? this.modelMaxLength;
    if (!Number.isSafeInteger(maxLength) || maxLength < 2)
      throw new ArgumentError(
        `Expected maxLength to be an integer >= 2 (room for the start and end tokens) but received ${describe(o.maxLength)}`,
      );
    const padding = o.padding ?? 'max_length';
    if (padding !== 'max_length' && padding !== 'longest' && padding !== false)
      throw new ArgumentError(
        `Expected padding to be 'max_length', 'longest' or false but received ${describe(padding)}`,
      );
    const truncation = o.truncation ?? true;
    const rows = list.map((text, i) => {
      if (typeof text !== 'string')
        throw new ArgumentError(`Expected texts[${i}] to be a string but received ${describe(text)}`);
      let ids = this.encode(text);
      if (truncation && ids.length > maxLength - 2) ids = ids.slice(0, maxLength - 2);
      return [this.bosTokenId, ...ids, this.eosTokenId];
    });
    // Without truncation a longer row stays longer (transformers does the same; inputIdsTensor then refuses).
    const width = padding === 'max_length' ? maxLength : rows.reduce((w, r) => Math.max(w, r.length), 0);
    const inputIds = rows.map((r) =>
      padding === false || r.length >= width ? r : [...r, ...new Array<number>(width - r.length).fill(this.padTokenId)],
    );
    const attentionMask = rows.map((r, i) => inputIds[i]!.map((_, j) => (j < r.length ? 1 : 0)));
    return { inputIds, attentionMask };
  }

  /** call(texts, o).inputIds as an int64 tensor [batch, length]; rows must have equal length (pad). */
  inputIdsTensor(texts: string | readonly string[], o: CallOptions & { device?: Device } = {}): Tensor {
    const { inputIds } = this.call(texts, o);
    const width = inputIds[0]?.length ?? 0;
    if (inputIds.some((r) => r.length !== width))
      throw new ArgumentError("inputIdsTensor: rows have different lengths; use padding 'max_length' or 'longest'");
    const flat = new BigInt64Array(inputIds.length * width);
    inputIds.forEach((r, i) =>
      r.forEach((id, j) => {
        flat[i * width + j] = BigInt(id);
      }),
    );
    return tensor(flat, [inputIds.length, width], o.device === undefined ? {} : { device: o.device });
  }

  /** openai/CLIP's bpe(): merge the lowest-ranked adjacent pair until none is in merges.txt. */
  #bpe(token: string): string[] {
    const hit = this.#cache.get(token);
    if (hit !== undefined) return hit;
    const chars = Array.from(token);
    let word = chars.length === 0 ? [] : [...chars.slice(0, -1), chars[chars.length - 1] + '</w>'];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.#ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!;
      const second = word[best + 1]!;
      const next: string[] = [];
      for (let i = 0; i < word.length;) {
        if (word[i] === first && i < word.length - 1 && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]!);
          i += 1;
        }
      }
      word = next;
    }
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(token, word);
    return word;
  }
}

/** A tokenizer file's text, or an error saying which file is missing or unreadable. */
function readTokenizerFile(path: string): string {
  if (!existsSync(path))
    throw new ImmunizeError(
      'E_MODEL_FILE',
      `tokenizer file ${path} is missing (a CLIP tokenizer folder needs vocab.json and merges.txt)`,
    );
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new ImmunizeError('E_MODEL_FILE', `cannot read ${path}: ${(e as Error).message}`);
  }
}

function readJsonObject(path: string, required: true): Record<string, unknown>;
function readJsonObject(path: string, required: false): Record<string, unknown> | undefined;
function readJsonObject(path: string, required: boolean): Record<string, unknown> | undefined {
  if (!required && !existsSync(path)) return undefined;
  const text = readTokenizerFile(path);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ImmunizeError('E_CONFIG', `${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new ImmunizeError('E_CONFIG', `${path} should hold a JSON object but holds ${describe(v)}`);
  return v as Record<string, unknown>;
}

/** merges.txt: a "#version: …" header line, then one "left right" rule per line. */
function readMerges(path: string): string[] {
  const text = readTokenizerFile(path);
  const lines = text.replace(/\r\n/g, '\n').trim().split('\n');
  const start = lines[0]?.startsWith('#version') ? 1 : 0;
  const merges = lines.slice(start);
  merges.forEach((m, i) => {
    if (m.split(' ').length !== 2 || m.includes('  '))
      throw new ImmunizeError(
        'E_CONFIG',
        `${path}: line ${i + start + 1} should be two symbols separated by one space but is ${JSON.stringify(m.slice(0, 80))}`,
      );
  });
  return merges;
}

// ---- bytes <-> printable unicode (GPT-2 / CLIP bytes_to_unicode) -------------------------------

/**
 * Every byte gets a printable character so that BPE never sees whitespace or control
 * characters: bytes '!'..'~', '¡'..'¬', '®'..'ÿ' map to themselves, the other 68 to U+0100….
 */
const BYTE_TO_CHAR: string[] = (() => {
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return out;
})();
const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));
const UTF8 = new TextEncoder();

function byteEncode(s: string): string {
  let out = '';
  for (const b of UTF8.encode(s)) out += BYTE_TO_CHAR[b];
  return out;
}

function byteDecode(s: string): string {
  const bytes: number[] = [];
  for (const ch of s) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b !== undefined) bytes.push(b);
    else bytes.push(...UTF8.encode(ch)); // '</w>' and anything outside the byte alphabet
  }
  return new TextDecoder('utf-8', { fatal: false }).decode(new Uint8Array(bytes)); // errors='replace'
}

// ---- html.unescape (Python 3 `html` module) ------------------------------------------------------

// The HTML 4 entities (Python's html.entities.name2codepoint) plus &apos;, with HTML5's values
// (⟨ ⟩ for lang/rang). HTML5 defines ~2,000 more names; they are rare in prompts and are left as
// written here, where Python would replace them.
const ENTITY_TABLE =
  'quot:22 amp:26 apos:27 lt:3c gt:3e nbsp:a0 iexcl:a1 cent:a2 pound:a3 curren:a4 yen:a5 brvbar:a6 sect:a7 uml:a8 copy:a9 ordf:aa laquo:ab not:ac shy:ad reg:ae macr:af deg:b0 plusmn:b1 sup2:b2 sup3:b3 acute:b4 micro:b5 para:b6 middot:b7 cedil:b8 sup1:b9 ordm:ba raquo:bb frac14:bc frac12:bd frac34:be iquest:bf Agrave:c0 Aacute:c1 Acirc:c2 Atilde:c3 Auml:c4 Aring:c5 AElig:c6 Ccedil:c7 Egrave:c8 Eacute:c9 Ecirc:ca Euml:cb Igrave:cc Iacute:cd Icirc:ce Iuml:cf ETH:d0 Ntilde:d1 Ograve:d2 Oacute:d3 Ocirc:d4 Otilde:d5 Ouml:d6 times:d7 Oslash:d8 Ugrave:d9 Uacute:da Ucirc:db Uuml:dc Yacute:dd THORN:de szlig:df agrave:e0 aacute:e1 acirc:e2 atilde:e3 auml:e4 aring:e5 aelig:e6 ccedil:e7 egrave:e8 eacute:e9 ecirc:ea euml:eb igrave:ec iacute:ed icirc:ee iuml:ef eth:f0 ntilde:f1 ograve:f2 oacute:f3 ocirc:f4 otilde:f5 ouml:f6 divide:f7 oslash:f8 ugrave:f9 uacute:fa ucirc:fb uuml:fc yacute:fd thorn:fe yuml:ff ' +
  'OElig:152 oelig:153 Scaron:160 scaron:161 Yuml:178 fnof:192 circ:2c6 tilde:2dc Alpha:391 Beta:392 Gamma:393 Delta:394 Epsilon:395 Zeta:396 Eta:397 Theta:398 Iota:399 Kappa:39a Lambda:39b Mu:39c Nu:39d Xi:39e Omicron:39f Pi:3a0 Rho:3a1 Sigma:3a3 Tau:3a4 Upsilon:3a5 Phi:3a6 Chi:3a7 Psi:3a8 Omega:3a9 alpha:3b1 beta:3b2 gamma:3b3 delta:3b4 epsilon:3b5 zeta:3b6 eta:3b7 theta:3b8 iota:3b9 kappa:3ba lambda:3bb mu:3bc nu:3bd xi:3be omicron:3bf pi:3c0 rho:3c1 sigmaf:3c2 sigma:3c3 tau:3c4 upsilon:3c5 phi:3c6 chi:3c7 psi:3c8 omega:3c9 thetasym:3d1 upsih:3d2 piv:3d6 ' +
  'ensp:2002 emsp:2003 thinsp:2009 zwnj:200c zwj:200d lrm:200e rlm:200f ndash:2013 mdash:2014 lsquo:2018 rsquo:2019 sbquo:201a ldquo:201c rdquo:201d bdquo:201e dagger:2020 Dagger:2021 bull:2022 hellip:2026 permil:2030 prime:2032 Prime:2033 lsaquo:2039 rsaquo:203a oline:203e frasl:2044 euro:20ac image:2111 weierp:2118 real:211c trade:2122 alefsym:2135 larr:2190 uarr:2191 rarr:2192 darr:2193 harr:2194 crarr:21b5 lArr:21d0 uArr:21d1 rArr:21d2 dArr:21d3 hArr:21d4 ' +
  'forall:2200 part:2202 exist:2203 empty:2205 nabla:2207 isin:2208 notin:2209 ni:220b prod:220f sum:2211 minus:2212 lowast:2217 radic:221a prop:221d infin:221e ang:2220 and:2227 or:2228 cap:2229 cup:222a int:222b there4:2234 sim:223c cong:2245 asymp:2248 ne:2260 equiv:2261 le:2264 ge:2265 sub:2282 sup:2283 nsub:2284 sube:2286 supe:2287 oplus:2295 otimes:2297 perp:22a5 sdot:22c5 lceil:2308 rceil:2309 lfloor:230a rfloor:230b lang:27e8 rang:27e9 loz:25ca spades:2660 clubs:2663 hearts:2665 diams:2666';
/** name (with ';') → text; HTML5's legacy names also work without ';' (quot amp lt gt and Latin-1, plus AMP COPY GT LT QUOT REG). */
const ENTITIES: Map<string, string> = (() => {
  const m = new Map<string, string>();
  for (const e of ENTITY_TABLE.split(' ')) {
    const [name, hex] = e.split(':') as [string, string];
    const ch = String.fromCodePoint(parseInt(hex, 16));
    m.set(name + ';', ch);
    const cp = parseInt(hex, 16);
    if ((cp >= 0xa0 && cp <= 0xff) || ['quot', 'amp', 'lt', 'gt'].includes(name)) m.set(name, ch);
  }
  for (const [name, ch] of [
    ['AMP', '&'],
    ['COPY', '©'],
    ['GT', '>'],
    ['LT', '<'],
    ['QUOT', '"'],
    ['REG', '®'],
  ] as const) {
    m.set(name, ch);
    m.set(name + ';', ch);
  }
  return m;
})();
// Python's html._invalid_charrefs: numeric references read as Windows-1252 (0x80–0x9f), NUL and CR.
const CP1252 =
  '\u20ac\x81\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\x8d\u017d\x8f\x90\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\x9d\u017e\u0178';
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

/** Python's html.unescape: numeric references with its invalid-codepoint rules, named references by longest prefix. */
export function htmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(CHARREF, (whole, ref: string) => {
    if (ref[0] === '#') {
      const hex = ref[1] === 'x' || ref[1] === 'X';
      const num = parseInt(ref.slice(hex ? 2 : 1).replace(/;$/, ''), hex ? 16 : 10);
      if (num === 0) return '\ufffd';
      if (num === 13) return '\r';
      if (num >= 0x80 && num <= 0x9f) return CP1252[num - 0x80]!;
      if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
      if (
        (num >= 0x1 && num <= 0x8) ||
        num === 0xb ||
        (num >= 0xe && num <= 0x1f) ||
        num === 0x7f ||
        (num >= 0xfdd0 && num <= 0xfdef) ||
        (num & 0xfffe) === 0xfffe
      )
        return '';
      return String.fromCodePoint(num);
    }
    const hit = ENTITIES.get(ref);
    if (hit !== undefined) return hit;
    for (let n = ref.length - 1; n > 1; n--) {
      const pre = ENTITIES.get(ref.slice(0, n));
      if (pre !== undefined) return pre + ref.slice(n);
    }
    return whole;
  });
}
