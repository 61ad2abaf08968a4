/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}`,
 * then the raw little-endian tensor bytes. The reader keeps only the header in memory and reads
 * tensors by name with positioned reads, so a 2 GB checkpoint never needs 2 GB of JS heap.
 * Every structural problem becomes a SafetensorsError naming the file and, where there is one,
 * the tensor.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { ImmunizeError } from '../errors.js';

export type SafetensorsDType =
  | 'BOOL'
  | 'U8'
  | 'I8'
  | 'I16'
  | 'U16'
  | 'I32'
  | 'U32'
  | 'I64'
  | 'U64'
  | 'F16'
  | 'BF16'
  | 'F32'
  | 'F64'
  | 'F8_E4M3'
  | 'F8_E5M2';

export const DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** Headers beyond this are refused before anything is allocated (the Rust reference uses 100 MB too). */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends ImmunizeError {
  readonly file: string;
  readonly key: string | undefined;
  constructor(file: string, key: string | undefined, message: string, options?: { cause?: unknown }) {
    super('E_SAFETENSORS', `${file}: ${key === undefined ? '' : `tensor "${key}": `}${message}`, options);
    this.name = 'SafetensorsError';
    this.file = file;
    this.key = key;
  }
}

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export interface ParsedHeader {
  metadata: Record<string, string>;
  /** In data order (ascending offset). */
  entries: TensorEntry[];
}

function isDType(v: unknown): v is SafetensorsDType {
  return typeof v === 'string' && Object.hasOwn(DTYPE_BYTES, v);
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Validates a decoded header against the size of the data section that follows it.
 * `dataStart` is the absolute offset of that section (8 + header length).
 */
export function parseHeader(json: unknown, dataStart: number, dataSize: number, label: string): ParsedHeader {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(
      label,
      undefined,
      `header must be a JSON object, found ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`,
    );
  }
  const metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      // The reference reads __metadata__ as Option<HashMap<String, String>>, so null means "none".
      if (value === null) continue;
      if (typeof value !== 'object' || Array.isArray(value))
        throw new SafetensorsError(label, undefined, '__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string')
          throw new SafetensorsError(label, undefined, `__metadata__["${k}"] must be a string, found ${typeof v}`);
        // defineProperty, not assignment: a "__proto__" key would otherwise set the prototype and vanish.
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new SafetensorsError(label, name, 'entry must be an object with dtype, shape and data_offsets');
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (!isDType(dtype))
      throw new SafetensorsError(
        label,
        name,
        `unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`,
      );
    if (!Array.isArray(shape))
      throw new SafetensorsError(
        label,
        name,
        `shape must be a list of non-negative integers, found ${JSON.stringify(shape)}`,
      );
    let count = 1;
    for (const d of shape) {
      if (!isIndex(d))
        throw new SafetensorsError(
          label,
          name,
          `shape must be a list of non-negative integers, found ${JSON.stringify(shape)}`,
        );
      count *= d;
      if (!Number.isSafeInteger(count))
        throw new SafetensorsError(label, name, `shape ${JSON.stringify(shape)} has too many elements`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !isIndex(offsets[0]) || !isIndex(offsets[1])) {
      throw new SafetensorsError(
        label,
        name,
        `data_offsets must be [begin, end] with non-negative integers, found ${JSON.stringify(offsets)}`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) throw new SafetensorsError(label, name, `data_offsets [${begin}, ${end}] are reversed`);
    if (end > dataSize)
      throw new SafetensorsError(
        label,
        name,
        `data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes)`,
      );
    const bytes = count * DTYPE_BYTES[dtype];
    if (end - begin !== bytes) {
      throw new SafetensorsError(
        label,
        name,
        `shape ${JSON.stringify(shape)} × ${dtype} is ${bytes} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    entries.push({ name, dtype, shape: [...shape] as number[], begin: dataStart + begin, end: dataStart + end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < entries.length; i++) {
    const prev = entries[i - 1]!,
      cur = entries[i]!;
    if (cur.begin < prev.end) {
      throw new SafetensorsError(
        label,
        cur.name,
        `data overlaps tensor "${prev.name}" (bytes ${cur.begin - dataStart}..${cur.end - dataStart} vs ${prev.begin - dataStart}..${prev.end - dataStart})`,
      );
    }
  }
  return { metadata, entries };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** An open safetensors file: header parsed and validated, data read on demand. */
export class SafetensorsFile implements Disposable {
  readonly path: string;
  readonly metadata: Record<string, string>;
  readonly entries: readonly TensorEntry[];
  readonly #byName: Map<string, TensorEntry>;
  #fd: number | null;

  private constructor(path: string, fd: number, header: ParsedHeader) {
    this.path = path;
    this.#fd = fd;
    this.metadata = header.metadata;
    this.entries = header.entries;
    this.#byName = new Map(header.entries.map((e) => [e.name, e]));
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      // Checked before opening: open() on a FIFO blocks until a writer appears, and a directory
      // opens fine on Linux and only fails (EISDIR) at the first read.
      if (!statSync(path).isFile()) throw new SafetensorsError(path, undefined, 'not a regular file');
      fd = openSync(path, 'r');
    } catch (e) {
      if (e instanceof SafetensorsError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      throw new SafetensorsError(
        path,
        undefined,
        code === 'ENOENT' ? 'no such file' : `cannot open: ${(e as Error).message}`,
      );
    }
    try {
      return new SafetensorsFile(path, fd, readHeader(fd, path));
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  keys(): string[] {
    return this.entries.map((e) => e.name);
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  entry(name: string): TensorEntry {
    const e = this.#byName.get(name);
    if (e === undefined)
      throw new SafetensorsError(
        this.path,
        name,
        `no such tensor (the file has ${this.entries.length}: ${this.keys().slice(0, 8).join(', ')}${this.entries.length > 8 ? ', …' : ''})`,
      );
    return e;
  }

  /** The raw little-endian bytes of one tensor (in the JS heap's external memory: for big tensors use loadSafetensors). */
  readBytes(name: string): Buffer {
    const e = this.entry(name);
    if (this.#fd === null) throw new SafetensorsError(this.path, name, 'file is closed');
    const length = e.end - e.begin;
    if (length > bufferConstants.MAX_LENGTH)
      throw new SafetensorsError(
        this.path,
        name,
        `${length} bytes do not fit in one Buffer (max ${bufferConstants.MAX_LENGTH}); read it with loadSafetensors`,
      );
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = readSync(this.#fd, out, done, length - done, e.begin + done);
      } catch (err) {
        throw new SafetensorsError(this.path, name, `read failed: ${(err as Error).message}`, { cause: err });
      }
      // The header was checked against the size at open, so this means the file shrank since.
      if (n === 0)
        throw new SafetensorsError(
          this.path,
          name,
          'file ended before the tensor data (truncated since it was opened?)',
        );
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.#fd !== null) {
      closeSync(this.#fd);
      this.#fd = null;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function readExactly(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}

function readHeader(fd: number, path: string): ParsedHeader {
  const size = fstatSync(fd).size;
  if (size < 8)
    throw new SafetensorsError(
      path,
      undefined,
      `file is ${size} bytes; a safetensors file starts with an 8-byte header length (truncated or not safetensors)`,
    );
  const prefix = readExactly(fd, 8, 0);
  const n = prefix.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES))
    throw new SafetensorsError(
      path,
      undefined,
      `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or not safetensors)`,
    );
  const headerLength = Number(n);
  if (8 + headerLength > size)
    throw new SafetensorsError(
      path,
      undefined,
      `header length ${headerLength} runs past the end of the ${size}-byte file (truncated?)`,
    );
  const bytes = readExactly(fd, headerLength, 8);
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(bytes));
  } catch (e) {
    throw new SafetensorsError(path, undefined, `header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  return parseHeader(json, 8 + headerLength, size - 8 - headerLength, path);
}

export interface RawTensor {
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: Uint8Array;
}

/** Serialises tensors (in the given order) to one buffer. For small files; big ones go through writeSafetensors. */
export function serialize(
  tensors: Readonly<Record<string, RawTensor>>,
  metadata?: Readonly<Record<string, string>>,
  label = '<buffer>',
): Buffer {
  const { header, parts } = layout(tensors, metadata, label);
  return Buffer.concat([header, ...parts]);
}

/** Writes a safetensors file atomically (temporary file, then rename), so a crash never leaves half a file. */
export function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, RawTensor>>,
  metadata?: Readonly<Record<string, string>>,
): void {
  const { header, parts } = layout(tensors, metadata, path);
  const tmp = `${path}.${process.pid}.tmp`;
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'w');
    for (const b of [header, ...parts]) {
      let done = 0;
      while (done < b.byteLength) done += writeSync(fd, b, done, b.byteLength - done);
    }
    // Without fsync a power loss after the rename can leave an empty or partial file under the final name.
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
    throw new SafetensorsError(path, undefined, `cannot write: ${(e as Error).message}`, { cause: e });
  }
}

function layout(
  tensors: Readonly<Record<string, RawTensor>>,
  metadata: Readonly<Record<string, string>> | undefined,
  label: string,
): { header: Buffer; parts: Uint8Array[] } {
  // No prototype, so a tensor named "__proto__" becomes a key like any other instead of vanishing.
  const head: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new SafetensorsError(label, undefined, `metadata["${k}"] must be a string`);
    head['__metadata__'] = metadata;
  }
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new SafetensorsError(label, name, 'this name is reserved');
    if (!isDType(t.dtype)) throw new SafetensorsError(label, name, `unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!t.shape.every(isIndex)) throw new SafetensorsError(label, name, `bad shape ${JSON.stringify(t.shape)}`);
    const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (bytes !== t.data.byteLength)
      throw new SafetensorsError(
        label,
        name,
        `shape ${JSON.stringify(t.shape)} × ${t.dtype} is ${bytes} bytes but ${t.data.byteLength} were given`,
      );
    head[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    parts.push(t.data);
    offset += bytes;
  }
  let json = JSON.stringify(head);
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const jsonBytes = Buffer.from(json, 'utf8');
  const header = Buffer.alloc(8 + jsonBytes.length);
  header.writeBigUInt64LE(BigInt(jsonBytes.length), 0);
  jsonBytes.copy(header, 8);
  return { header, parts };
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1,
    e = (h >> 10) & 0x1f,
    m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function fp8ToFloat(b: number, expBits: number, bias: number, e4m3: boolean): number {
  const manBits = 7 - expBits;
  const s = b & 0x80 ? -1 : 1,
    e = (b >> manBits) & ((1 << expBits) - 1),
    m = b & ((1 << manBits) - 1);
  if (e4m3 && e === 15 && m === 7) return NaN; // E4M3FN: only S.1111.111 is NaN, no infinities
  if (!e4m3 && e === 31) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** (1 - bias - manBits);
  return s * (1 + m / (1 << manBits)) * 2 ** (e - bias);
}

const bf16Scratch = new DataView(new ArrayBuffer(4));

/** Decodes little-endian bytes to numbers (64-bit integers as the nearest double). For tests and inspection. */
export function decodeValues(dtype: SafetensorsDType, bytes: Uint8Array): number[] {
  if (!isDType(dtype)) throw new SafetensorsError('<buffer>', undefined, `unknown dtype ${JSON.stringify(dtype)}`);
  if (bytes.byteLength % DTYPE_BYTES[dtype] !== 0)
    throw new SafetensorsError(
      '<buffer>',
      undefined,
      `${bytes.byteLength} bytes are not a whole number of ${dtype} values`,
    );
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'BOOL':
        out[i] = v.getUint8(i) ? 1 : 0;
        break;
      case 'U8':
        out[i] = v.getUint8(i);
        break;
      case 'I8':
        out[i] = v.getInt8(i);
        break;
      case 'I16':
        out[i] = v.getInt16(2 * i, true);
        break;
      case 'U16':
        out[i] = v.getUint16(2 * i, true);
        break;
      case 'I32':
        out[i] = v.getInt32(4 * i, true);
        break;
      case 'U32':
        out[i] = v.getUint32(4 * i, true);
        break;
      case 'I64':
        out[i] = Number(v.getBigInt64(8 * i, true));
        break;
      case 'U64':
        out[i] = Number(v.getBigUint64(8 * i, true));
        break;
      case 'F16':
        out[i] = halfToFloat(v.getUint16(2 * i, true));
        break;
      // bfloat16 is the high half of a float32: put its bits there (big-endian scratch) and read the float.
      case 'BF16':
        bf16Scratch.setUint16(0, v.getUint16(2 * i, true));
        out[i] = bf16Scratch.getFloat32(0);
        break;
      case 'F32':
        out[i] = v.getFloat32(4 * i, true);
        break;
      case 'F64':
        out[i] = v.getFloat64(8 * i, true);
        break;
      case 'F8_E4M3':
        out[i] = fp8ToFloat(v.getUint8(i), 4, 7, true);
        break;
      case 'F8_E5M2':
        out[i] = fp8ToFloat(v.getUint8(i), 5, 15, false);
        break;
    }
  }
  return out;
}
