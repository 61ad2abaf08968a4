/**
 * A Hugging Face hub client over plain `fetch`, reading and writing the standard hub cache that
 * Python's huggingface_hub uses, so a model downloaded by either side is reused by the other:
 *
 *   <cache>/models--owner--name/refs/<revision>            the commit sha the revision resolved to
 *   <cache>/models--owner--name/blobs/<etag>               file contents (sha256 for LFS files)
 *   <cache>/models--owner--name/snapshots/<commit>/<path>  relative symlink to ../../blobs/<etag>
 *
 * A file already in the snapshot of the commit that refs/<revision> names (or of a pinned 40-hex
 * commit) is used without any network access. Downloads stream to blobs/<etag>.incomplete, resume
 * with a Range request, are checked for size (and sha256 for LFS files), then renamed into place.
 * Listing uses `GET /api/models/<repo>/revision/<rev>?blobs=true` (what huggingface_hub's
 * `repo_info(files_metadata=True)` calls); the answer for a commit never changes, so it is kept in
 * `<repo folder>/.immunize/files-<commit>.json` and a second run needs no request at all.
 */
import { createHash, type Hash } from 'node:crypto';
import {
  copyFileSync,
  createReadStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { ArgumentError, ImmunizeError } from '../errors.js';
import { createProgress, type Progress } from './progress.js';

export interface HubOptions {
  /** Branch, tag or 40-hex commit. Default 'main'. */
  revision?: string;
  /** Default: hubCacheDir(). */
  cacheDir?: string;
  /** Default: HF_TOKEN, else the token file ($HF_HOME/token). An empty string sends none. */
  token?: string;
  /** Default: HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Use only the cache, never the network. Default: HF_HUB_OFFLINE (1/true/yes/on). */
  offline?: boolean;
  /** Called for every chunk written; without it, files over 1 MB get a progress bar on stderr. */
  onProgress?: (file: string, done: number, total: number) => void;
  fetch?: typeof fetch;
}

export interface RepoFile {
  /** Path inside the repo, '/'-separated. */
  path: string;
  /** Bytes; -1 when the server did not say. */
  size: number;
}

const COMMIT = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const SAFE_ETAG = /^[\w.-]+$/;
const OWNER = /^[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9_])?$/;
const NAME = /^[A-Za-z0-9_](?:[\w.-]*[A-Za-z0-9_])?$/;
/** Names that are file paths gone wrong rather than repos (`vae/model.safetensors` that does not exist). */
const FILE_EXT = /\.(safetensors|ckpt|pt|pth|bin|pkl|json|onnx|gguf)$/i;
const PROGRESS_MIN = 1_000_000;
const USER_AGENT = `immunize; node/${process.versions.node}`;

/** True for an `owner/name` Hugging Face repo id (huggingface_hub's rules) that is not an existing local path. */
export function isRepoId(s: string): boolean {
  return validRepoId(s) && !existsSync(s);
}

function validRepoId(s: string): boolean {
  const parts = s.split('/');
  if (parts.length !== 2) return false;
  const [owner, name] = parts as [string, string];
  return (
    OWNER.test(owner) &&
    NAME.test(name) &&
    name.length <= 96 &&
    !s.includes('--') &&
    !s.includes('..') &&
    !FILE_EXT.test(name)
  );
}

function envFlag(v: string | undefined): boolean {
  return v !== undefined && ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase());
}

function expandHome(p: string, env: NodeJS.ProcessEnv): string {
  return p === '~' || p.startsWith('~/') ? join(env['HOME'] || homedir(), p.slice(1)) : p;
}

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (as huggingface_hub). */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env['HF_HOME']) return expandHome(env['HF_HOME'], env);
  const xdg = env['XDG_CACHE_HOME'] ? expandHome(env['XDG_CACHE_HOME'], env) : join(env['HOME'] || homedir(), '.cache');
  return join(xdg, 'huggingface');
}

/** The hub cache: HF_HUB_CACHE (or the older HUGGINGFACE_HUB_CACHE), else $HF_HOME/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['HF_HUB_CACHE'] || env['HUGGINGFACE_HUB_CACHE'];
  return explicit ? expandHome(explicit, env) : join(hfHome(env), 'hub');
}

/** `models--owner--name`, the repo's folder in the cache. */
export function repoFolderName(repo: string, type: 'model' | 'dataset' | 'space' = 'model'): string {
  return [`${type}s`, ...repo.split('/')].join('--');
}

function defaultToken(env: NodeJS.ProcessEnv): string | null {
  const fromEnv = env['HF_TOKEN'] || env['HUGGING_FACE_HUB_TOKEN'];
  if (fromEnv) return fromEnv.trim();
  const file = env['HF_TOKEN_PATH'] ? expandHome(env['HF_TOKEN_PATH'], env) : join(hfHome(env), 'token');
  try {
    return readFileSync(file, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

interface Ctx {
  cache: string;
  endpoint: string;
  token: string | null;
  offline: boolean;
  fetch: typeof fetch;
  onProgress: HubOptions['onProgress'];
  repo: string;
  revision: string;
  /** <cache>/models--owner--name */
  dir: string;
}

function context(repo: string, o: HubOptions): Ctx {
  if (!validRepoId(repo)) throw new ArgumentError(`'${repo}' is not a Hugging Face repo id (expected owner/name)`);
  const revision = o.revision ?? 'main';
  if (
    revision === '' ||
    revision.split('/').some((s) => s === '' || s === '.' || s === '..') ||
    revision.includes('\\')
  ) {
    throw new ArgumentError(`'${revision}' is not a valid revision`);
  }
  const env = process.env;
  const cache = o.cacheDir ?? hubCacheDir(env);
  const token = o.token !== undefined ? o.token.trim() || null : defaultToken(env);
  return {
    cache,
    endpoint: (o.endpoint ?? env['HF_ENDPOINT'] ?? 'https://huggingface.co').replace(/\/+$/, ''),
    token,
    offline: o.offline ?? envFlag(env['HF_HUB_OFFLINE'] ?? env['TRANSFORMERS_OFFLINE']),
    fetch: o.fetch ?? globalThis.fetch,
    onProgress: o.onProgress,
    repo,
    revision,
    dir: join(cache, repoFolderName(repo)),
  };
}

// ---------------------------------------------------------------------------------------------
// Cache layout

/** The commit the revision stands for locally: itself when it is a commit, else refs/<revision>. */
function knownCommit(ctx: Ctx): string | null {
  if (COMMIT.test(ctx.revision)) return ctx.revision;
  try {
    const sha = readFileSync(join(ctx.dir, 'refs', ...ctx.revision.split('/')), 'utf8').trim();
    return COMMIT.test(sha) ? sha : null;
  } catch {
    return null;
  }
}

function snapshotDir(ctx: Ctx, commit: string): string {
  return join(ctx.dir, 'snapshots', commit);
}

function pointerPath(ctx: Ctx, commit: string, path: string): string {
  return join(snapshotDir(ctx, commit), ...path.split('/'));
}

/** Records revision → commit (as huggingface_hub: only for names, and with its snapshot folder, so the cache never has a dangling ref). */
function writeRef(ctx: Ctx, commit: string): void {
  mkdirSync(snapshotDir(ctx, commit), { recursive: true });
  if (ctx.revision === commit) return;
  const ref = join(ctx.dir, 'refs', ...ctx.revision.split('/'));
  if (knownCommit(ctx) === commit) return;
  mkdirSync(dirname(ref), { recursive: true });
  writeFileSync(ref, commit);
}

/** Points snapshots/<commit>/<path> at the blob with a relative symlink (a copy where symlinks are not allowed, as huggingface_hub on Windows). */
function link(blob: string, pointer: string): void {
  mkdirSync(dirname(pointer), { recursive: true });
  try {
    lstatSync(pointer);
    unlinkSync(pointer); // a dangling link left after its blob was deleted
  } catch {
    /* absent */
  }
  try {
    symlinkSync(relative(dirname(pointer), blob), pointer);
  } catch (e) {
    if (!['EPERM', 'EACCES', 'ENOSYS', 'ENOTSUP'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    copyFileSync(blob, pointer);
  }
}

/** Files present in a snapshot folder (links followed, dangling ones skipped), '/'-separated and sorted. */
function cachedFiles(root: string): RepoFile[] {
  const out: RepoFile[] = [];
  const walk = (dir: string, prefix: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      let st;
      try {
        st = statSync(full);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(full, `${prefix}${e.name}/`);
      else if (st.isFile()) out.push({ path: `${prefix}${e.name}`, size: st.size });
    }
  };
  walk(root, '');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function listingCachePath(ctx: Ctx, commit: string): string {
  return join(ctx.dir, '.immunize', `files-${commit}.json`);
}

function readListingCache(ctx: Ctx, commit: string): RepoFile[] | null {
  try {
    const files = JSON.parse(readFileSync(listingCachePath(ctx, commit), 'utf8')) as unknown;
    if (
      !Array.isArray(files) ||
      !files.every((f: RepoFile) => typeof f?.path === 'string' && typeof f.size === 'number' && safePath(f.path))
    )
      return null;
    return files as RepoFile[];
  } catch {
    return null;
  }
}

function writeListingCache(ctx: Ctx, commit: string, files: RepoFile[]): void {
  writeFileAtomic(listingCachePath(ctx, commit), JSON.stringify(files));
}

function safePath(p: string): boolean {
  return (
    p !== '' && !p.includes('\\') && !p.includes('\0') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..')
  );
}

// ---------------------------------------------------------------------------------------------
// Glob patterns

/**
 * Shell-style patterns on '/'-separated paths: `*` and `?` stay inside one folder, `**` crosses
 * folders, `[abc]`/`[!abc]` are classes, and a pattern ending in '/' means everything under it.
 */
export function globToRegExp(pattern: string): RegExp {
  const p = pattern.endsWith('/') ? `${pattern}**` : pattern;
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') {
      if (p[i + 1] === '*') {
        i++;
        if (p[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[' && p.indexOf(']', i + 2) > i) {
      const end = p.indexOf(']', i + 2);
      let body = p.slice(i + 1, end);
      const negate = body.startsWith('!') || body.startsWith('^');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^/' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function selector(allow: string[] | undefined): (path: string) => boolean {
  if (allow === undefined) return () => true;
  const res = allow.map(globToRegExp);
  return (path) => res.some((r) => r.test(path));
}

// ---------------------------------------------------------------------------------------------
// HTTP

interface Meta {
  commit: string | null;
  etag: string | null;
  size: number | null;
}

function normalizeEtag(v: string | null): string | null {
  if (v === null) return null;
  const s = v
    .trim()
    .replace(/^W\//, '')
    .replace(/^"(.*)"$/, '$1');
  return s === '' ? null : s;
}

function intHeader(v: string | null): number | null {
  if (v === null || !/^\d+$/.test(v.trim())) return null;
  return Number(v.trim());
}

/** `bytes <start>-<end>/<total>` → {start, total}. */
function contentRange(v: string | null): { start: number; total: number | null } | null {
  const m = v === null ? null : /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(v.trim());
  return m ? { start: Number(m[1]), total: m[2] === '*' ? null : Number(m[2]) } : null;
}

function metaOf(res: Response): Meta {
  const h = res.headers;
  const range = res.status === 206 ? (contentRange(h.get('content-range'))?.total ?? null) : null;
  return {
    commit: h.get('x-repo-commit'),
    etag: normalizeEtag(h.get('x-linked-etag') ?? h.get('etag')),
    size:
      intHeader(h.get('x-linked-size')) ?? range ?? (res.status === 200 ? intHeader(h.get('content-length')) : null),
  };
}

async function discard(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    /* already closed */
  }
}

/** Errors raised because the hub could not be reached at all (not HTTP error statuses). */
const connectionFailures = new WeakSet<object>();

function networkError(ctx: Ctx, url: string, e: unknown): ImmunizeError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (e as Error).message;
  const err = new ImmunizeError(
    'E_HUB_NETWORK',
    `cannot reach ${url}: ${why}. Check the network (and HF_ENDPOINT), ` +
      `or set HF_HUB_OFFLINE=1 to use only what is already in the cache (${ctx.cache}).`,
    { cause: e },
  );
  connectionFailures.add(err);
  return err;
}

/**
 * GET with redirects followed by hand: the token goes only to the hub's own origin (never to the
 * CDN a file redirects to), and with `stopAtHub` the hub's own answer (the one carrying
 * X-Repo-Commit, usually a 302 for LFS files) is returned so its headers can be read.
 */
async function get(
  ctx: Ctx,
  url: string,
  headers: Record<string, string>,
  stopAtHub: boolean,
): Promise<{ res: Response; url: string }> {
  const origin = new URL(ctx.endpoint).origin;
  for (let hop = 0; hop < 10; hop++) {
    const h: Record<string, string> = { 'Accept-Encoding': 'identity', 'User-Agent': USER_AGENT, ...headers };
    if (ctx.token !== null && new URL(url).origin === origin) h['Authorization'] = `Bearer ${ctx.token}`;
    let res: Response;
    try {
      res = await ctx.fetch(url, { headers: h, redirect: 'manual' });
    } catch (e) {
      throw networkError(ctx, url, e);
    }
    const location = res.headers.get('location');
    if (
      res.status >= 300 &&
      res.status < 400 &&
      location !== null &&
      !(stopAtHub && res.headers.has('x-repo-commit'))
    ) {
      await discard(res);
      url = new URL(location, url).href;
      continue;
    }
    return { res, url };
  }
  throw new ImmunizeError('E_HUB_NETWORK', `too many redirects from ${url}`);
}

function describeTarget(ctx: Ctx, file?: string): string {
  return `${file !== undefined ? `file '${file}' in ` : ''}repo '${ctx.repo}' at revision '${ctx.revision}'`;
}

async function httpError(ctx: Ctx, res: Response, url: string, file?: string): Promise<ImmunizeError> {
  await discard(res);
  const code = res.headers.get('x-error-code');
  const serverMsg = res.headers.get('x-error-message');
  const detail = `(HTTP ${res.status}${code ? ` ${code}` : ''} from ${url}${serverMsg ? `: ${serverMsg}` : ''})`;
  const page = `${ctx.endpoint}/${ctx.repo}`;
  if (code === 'RepoNotFound') {
    return new ImmunizeError(
      'E_HUB_NOT_FOUND',
      `not found on the hub: repo '${ctx.repo}'${file !== undefined ? ` (file '${file}', revision '${ctx.revision}')` : ` (revision '${ctx.revision}')`} ${detail}. ` +
        `Check the spelling; if it is private, set HF_TOKEN to a token with access; if you meant a local path, it does not exist.`,
    );
  }
  if (code === 'GatedRepo') {
    return new ImmunizeError(
      'E_HUB_AUTH',
      `${describeTarget(ctx, file)} is gated ${detail}: accept the model licence at ${page} while logged in, ` +
        `then set HF_TOKEN to a token of that account${ctx.token === null ? ' (no token was sent)' : ''}.`,
    );
  }
  if (res.status === 401 || res.status === 403) {
    return new ImmunizeError(
      'E_HUB_AUTH',
      `access denied to ${describeTarget(ctx, file)} ${detail}: ` +
        (ctx.token === null
          ? 'no token was sent; set HF_TOKEN (or run `huggingface-cli login`) with a token from https://huggingface.co/settings/tokens'
          : 'the token was refused or has no access to this repo; check HF_TOKEN / the token file') +
        `, and accept the model licence at ${page} if it asks for one.`,
    );
  }
  if (res.status === 404) {
    const what =
      code === 'RevisionNotFound'
        ? `revision '${ctx.revision}' of repo '${ctx.repo}'${file !== undefined ? ` (looking for file '${file}')` : ''}`
        : describeTarget(ctx, file);
    return new ImmunizeError('E_HUB_NOT_FOUND', `not found on the hub: ${what} ${detail}`);
  }
  return new ImmunizeError(
    'E_HUB_NETWORK',
    `unexpected answer from the hub for ${describeTarget(ctx, file)}: ` +
      `HTTP ${res.status} ${res.statusText} from ${url}${serverMsg ? `: ${serverMsg}` : ''}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Listing

async function apiListing(ctx: Ctx, revision: string): Promise<{ sha: string; files: RepoFile[] }> {
  const url = `${ctx.endpoint}/api/models/${ctx.repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
  const { res } = await get(ctx, url, { Accept: 'application/json' }, false);
  if (!res.ok) throw await httpError(ctx, res, url);
  let info: { sha?: unknown; siblings?: unknown };
  try {
    info = (await res.json()) as typeof info;
  } catch (e) {
    throw new ImmunizeError(
      'E_HUB_NETWORK',
      `${url} did not answer with JSON: is ${ctx.endpoint} a Hugging Face hub?`,
      { cause: e },
    );
  }
  if (typeof info.sha !== 'string' || !COMMIT.test(info.sha) || !Array.isArray(info.siblings)) {
    throw new ImmunizeError(
      'E_HUB_NETWORK',
      `${url}: the answer has no commit sha or file list: is ${ctx.endpoint} a Hugging Face hub?`,
    );
  }
  const files: RepoFile[] = [];
  for (const s of info.siblings as { rfilename?: unknown; size?: unknown; lfs?: { size?: unknown } }[]) {
    if (typeof s?.rfilename !== 'string') continue;
    if (!safePath(s.rfilename))
      throw new ImmunizeError('E_HUB_NETWORK', `${url} lists an unsafe file path '${s.rfilename}'; refusing to use it`);
    const size = typeof s.size === 'number' ? s.size : typeof s.lfs?.size === 'number' ? s.lfs.size : -1;
    files.push({ path: s.rfilename, size });
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { sha: info.sha, files };
}

/** The commit and its full file list, from the cache when the commit is known and was listed before. */
async function listing(ctx: Ctx): Promise<{ commit: string; files: RepoFile[] }> {
  const known = knownCommit(ctx);
  const cached = known !== null ? readListingCache(ctx, known) : null;
  if (known !== null && cached !== null) return { commit: known, files: cached };
  const { sha, files } = await apiListing(ctx, known ?? ctx.revision);
  writeRef(ctx, sha);
  writeListingCache(ctx, sha, files);
  return { commit: sha, files };
}

function offlineError(ctx: Ctx, what: string): ImmunizeError {
  return new ImmunizeError(
    'E_HUB_OFFLINE',
    `offline (HF_HUB_OFFLINE) and ${what} is not in the Hugging Face cache ${ctx.cache} ` +
      `(looked in ${ctx.dir}). Run once with network access to download it, or pass a local model folder.`,
  );
}

/** The cached snapshot folder of the revision, or an E_HUB_OFFLINE error. */
function offlineSnapshot(ctx: Ctx): { commit: string; dir: string } {
  const commit = knownCommit(ctx);
  if (commit === null || !existsSync(snapshotDir(ctx, commit))) {
    throw offlineError(
      ctx,
      `repo '${ctx.repo}' at revision '${ctx.revision}'${commit === null ? ` (no refs/${ctx.revision})` : ` (no snapshot ${commit})`}`,
    );
  }
  return { commit, dir: snapshotDir(ctx, commit) };
}

function isConnectionFailure(e: unknown): boolean {
  return typeof e === 'object' && e !== null && connectionFailures.has(e);
}

/**
 * The repo's files at the revision (with `folder`, only those under it). Online: the hub's list
 * (cached per commit). Offline, or when the hub cannot be reached but a snapshot is cached: the
 * files present in the cached snapshot.
 */
export async function listRepoFiles(repo: string, o: HubOptions & { folder?: string } = {}): Promise<RepoFile[]> {
  const ctx = context(repo, o);
  const prefix = o.folder === undefined || o.folder === '' ? '' : `${o.folder.replace(/\/+$/, '')}/`;
  const under = (files: RepoFile[]): RepoFile[] => files.filter((f) => f.path.startsWith(prefix));
  const fromCache = (): RepoFile[] => under(cachedFiles(offlineSnapshot(ctx).dir));
  if (ctx.offline) return fromCache();
  try {
    return under((await listing(ctx)).files);
  } catch (e) {
    if (isConnectionFailure(e) && knownCommit(ctx) !== null && existsSync(snapshotDir(ctx, knownCommit(ctx)!)))
      return fromCache();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Downloads

/**
 * Local path of one file of the repo (inside snapshots/<commit>/), downloaded when it is not
 * cached for the commit the revision resolves to.
 */
export async function hubFile(repo: string, path: string, o: HubOptions = {}): Promise<string> {
  const ctx = context(repo, o);
  if (!safePath(path)) throw new ArgumentError(`'${path}' is not a valid file path inside a repo`);
  const commit = knownCommit(ctx);
  if (commit !== null && existsSync(pointerPath(ctx, commit, path))) return pointerPath(ctx, commit, path);
  if (ctx.offline)
    throw offlineError(ctx, `${describeTarget(ctx, path)}${commit !== null ? ` (commit ${commit})` : ''}`);
  return download(ctx, path, commit);
}

/**
 * The snapshot folder of the revision, with every file matching `allow` (all files without it)
 * present. Offline, the cached snapshot is returned when each pattern matches a cached file.
 */
export async function snapshot(repo: string, o: HubOptions & { allow?: string[] } = {}): Promise<string> {
  const ctx = context(repo, o);
  const wanted = selector(o.allow);
  const offline = (): string => {
    const { commit, dir } = offlineSnapshot(ctx);
    const present = cachedFiles(dir).map((f) => f.path);
    const missing = (o.allow ?? []).filter((p) => {
      const re = globToRegExp(p);
      return !present.some((f) => re.test(f)) && !existsSync(join(ctx.dir, '.no_exist', commit, ...p.split('/')));
    });
    if (missing.length > 0)
      throw offlineError(
        ctx,
        `${missing.map((p) => `'${p}'`).join(', ')} from repo '${ctx.repo}' at revision '${ctx.revision}' (commit ${commit})`,
      );
    return dir;
  };
  if (ctx.offline) return offline();
  let commit: string, files: RepoFile[];
  try {
    ({ commit, files } = await listing(ctx));
  } catch (e) {
    if (isConnectionFailure(e) && knownCommit(ctx) !== null && existsSync(snapshotDir(ctx, knownCommit(ctx)!)))
      return offline();
    throw e;
  }
  const selected = files.filter((f) => wanted(f.path));
  if (o.allow !== undefined && selected.length === 0) {
    throw new ImmunizeError(
      'E_HUB_NOT_FOUND',
      `not found on the hub: no file of repo '${ctx.repo}' at revision '${ctx.revision}' matches ${o.allow.map((p) => `'${p}'`).join(', ')} ` +
        `(files: ${files
          .slice(0, 20)
          .map((f) => f.path)
          .join(', ')}${files.length > 20 ? ', …' : ''})`,
    );
  }
  for (const f of selected) {
    if (!existsSync(pointerPath(ctx, commit, f.path))) await download(ctx, f.path, commit);
  }
  mkdirSync(snapshotDir(ctx, commit), { recursive: true });
  return snapshotDir(ctx, commit);
}

/** Downloads one file into the cache (blob + snapshot link + ref) and returns its snapshot path. */
async function download(ctx: Ctx, path: string, commit: string | null): Promise<string> {
  const encodedPath = path.split('/').map(encodeURIComponent).join('/');
  const url = `${ctx.endpoint}/${ctx.repo}/resolve/${encodeURIComponent(commit ?? ctx.revision)}/${encodedPath}`;
  const first = await get(ctx, url, {}, true);
  const res = first.res;
  const location = res.headers.get('location');
  const redirect = res.status >= 300 && res.status < 400 && location !== null;
  if (!res.ok && !redirect) throw await httpError(ctx, res, first.url, path);
  const meta = metaOf(res);
  const sha = meta.commit ?? commit;
  if (sha === null || !COMMIT.test(sha)) {
    await discard(res);
    throw new ImmunizeError(
      'E_HUB_NETWORK',
      `${first.url}: the answer has no valid X-Repo-Commit header: is ${ctx.endpoint} a Hugging Face hub (or is a proxy in the way)?`,
    );
  }
  if (meta.etag === null || !SAFE_ETAG.test(meta.etag)) {
    await discard(res);
    throw new ImmunizeError(
      'E_HUB_NETWORK',
      `${first.url}: the answer has no usable ETag (${meta.etag ?? 'none'}), so the file cannot be cached`,
    );
  }
  const pointer = pointerPath(ctx, sha, path);
  const blob = join(ctx.dir, 'blobs', meta.etag);
  if (existsSync(pointer)) {
    await discard(res);
  } else {
    if (existsSync(blob))
      await discard(res); // same contents already cached for another commit
    else
      await writeBlob(
        ctx,
        path,
        blob,
        meta,
        redirect ? { next: new URL(location!, first.url).href } : { res, url: first.url },
      );
    link(blob, pointer);
  }
  writeRef(ctx, sha);
  return pointer;
}

/**
 * Streams the file into blobs/<etag>.incomplete (resuming a previous partial download with a
 * Range request), checks size and sha256, then renames it to blobs/<etag>.
 */
async function writeBlob(
  ctx: Ctx,
  path: string,
  blob: string,
  meta: Meta,
  from: { next: string } | { res: Response; url: string },
): Promise<void> {
  const part = `${blob}.incomplete`;
  mkdirSync(dirname(blob), { recursive: true });
  let have = existsSync(part) ? statSync(part).size : 0;
  if (meta.size !== null && have > meta.size) {
    rmSync(part, { force: true });
    have = 0;
  }

  // The response that will carry the bytes: the hub's own 200 when nothing is to be resumed,
  // else a new request (with Range) to the redirect target or the same URL.
  let res: Response | null = null;
  let target: string;
  if ('res' in from) {
    target = from.url;
    if (have === 0) res = from.res;
    else await discard(from.res);
  } else target = from.next;

  let expected = meta.size;
  if (res === null && !(have > 0 && have === expected)) {
    ({ res } = await get(ctx, target, have > 0 ? { Range: `bytes=${have}-` } : {}, false));
    if (res.status === 416 && have > 0) {
      // the partial file is not a prefix of this one: start over
      await discard(res);
      rmSync(part, { force: true });
      have = 0;
      ({ res } = await get(ctx, target, {}, false));
    }
    if (!res.ok) throw await httpError(ctx, res, target, path);
  }
  if (res !== null && res.status === 206) {
    const range = contentRange(res.headers.get('content-range'));
    if (range === null || range.start !== have) {
      await discard(res);
      throw new ImmunizeError(
        'E_HUB_NETWORK',
        `${target}: asked for bytes ${have}- of '${path}' and got ${res.headers.get('content-range') ?? 'no Content-Range'}`,
      );
    }
    expected ??= range.total;
  } else if (res !== null) {
    have = 0; // a full answer (the server ignored Range): start from zero
    expected ??= intHeader(res.headers.get('content-length'));
  }

  const hash: Hash | null = SHA256.test(meta.etag ?? '') ? createHash('sha256') : null;
  if (hash !== null && have > 0) {
    for await (const chunk of createReadStream(part, { end: have - 1 })) hash.update(chunk as Buffer);
  }
  const total = expected ?? 0;
  let progress: Progress | null = null;
  if (ctx.onProgress === undefined && total > PROGRESS_MIN)
    progress = createProgress({ label: path, total, unit: 'B' });
  let done = have;
  if (res !== null) {
    const fh = await open(part, have > 0 ? 'a' : 'w');
    try {
      for await (const chunk of res.body ?? []) {
        await fh.write(chunk);
        hash?.update(chunk);
        done += chunk.byteLength;
        if (ctx.onProgress !== undefined) ctx.onProgress(path, done, total);
        progress?.update(done);
      }
    } catch (e) {
      progress?.done('interrupted');
      throw new ImmunizeError(
        'E_HUB_NETWORK',
        `download of '${path}' from ${target} was interrupted after ${done} bytes ` +
          `(${(e as Error).message}); run again to resume from ${part}`,
        { cause: e },
      );
    } finally {
      await fh.close();
    }
  }
  progress?.done();

  const size = statSync(part).size;
  if (expected !== null && size !== expected) {
    rmSync(part, { force: true });
    throw new ImmunizeError(
      'E_HUB_VERIFY',
      `'${path}' of repo '${ctx.repo}': downloaded ${size} bytes but the hub announced ${expected}; the partial file was deleted, run again`,
    );
  }
  if (hash !== null) {
    const digest = hash.digest('hex');
    if (digest !== meta.etag) {
      rmSync(part, { force: true });
      throw new ImmunizeError(
        'E_HUB_VERIFY',
        `'${path}' of repo '${ctx.repo}': sha256 ${digest} does not match the hub's ${meta.etag}; ` +
          `the download was corrupted (or altered on the way) and was deleted, run again`,
      );
    }
  }
  renameSync(part, blob);
}
