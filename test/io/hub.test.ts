// Hugging Face hub client (src/io/hub.ts) against a fake hub served on 127.0.0.1: listing,
// downloads through a CDN redirect, the on-disk cache layout shared with Python's huggingface_hub,
// allow patterns, cache hits without network, resume, verification, offline mode and errors.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ImmunizeError } from '../../src/errors.js';
import {
  globToRegExp,
  hubCacheDir,
  hubFile,
  isRepoId,
  listRepoFiles,
  repoFolderName,
  snapshot,
  type HubOptions,
} from '../../src/io/hub.js';

// Keep the caller's environment (a real token, offline mode, a custom endpoint) out of these tests.
for (const k of [
  'HF_TOKEN',
  'HUGGING_FACE_HUB_TOKEN',
  'HF_TOKEN_PATH',
  'HF_HUB_OFFLINE',
  'TRANSFORMERS_OFFLINE',
  'HF_ENDPOINT',
])
  delete process.env[k];
process.env['IMMUNIZE_QUIET'] = '1';

const work = mkdtempSync(join(tmpdir(), 'immunize-hub-'));
process.env['HF_HOME'] = join(work, 'hf-home');
after(() => rmSync(work, { recursive: true, force: true }));
let cacheNo = 0;
const freshCache = (): string => join(work, `cache-${cacheNo++}`);

const sha1 = (b: Buffer | string): string => createHash('sha1').update(b).digest('hex');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const gitOid = (b: Buffer): string => sha1(Buffer.concat([Buffer.from(`blob ${b.length}\0`), b]));

function bytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

const REPO = 'acme/pipe';
const COMMIT = sha1('commit main');
const PR_COMMIT = sha1('commit pr');
const WEIGHTS = 'vae/diffusion_pytorch_model.safetensors';
const FILES = new Map<string, Buffer>([
  ['model_index.json', Buffer.from('{"_class_name": "StableDiffusionPipeline"}\n')],
  ['vae/config.json', Buffer.from('{"_class_name": "AutoencoderKL", "latent_channels": 4}\n')],
  [WEIGHTS, bytes(300_000, 1)],
  ['unet/config.json', Buffer.from('{"_class_name": "UNet2DConditionModel"}\n')],
  ['unet/diffusion_pytorch_model.safetensors', bytes(50_000, 2)],
]);
const isLfs = (path: string): boolean => path.endsWith('.safetensors');
const etagOf = (path: string): string => (isLfs(path) ? sha256(FILES.get(path)!) : gitOid(FILES.get(path)!));
const weights = FILES.get(WEIGHTS)!;
const WEIGHTS_SHA = sha256(weights);

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
}
const hubLog: Seen[] = [];
const cdnLog: Seen[] = [];
const mode = { ignoreRange: false, corrupt: false, sizeDelta: 0, cutAfter: 0 };
const resetMode = (): void => {
  Object.assign(mode, { ignoreRange: false, corrupt: false, sizeDelta: 0, cutAfter: 0 });
};
const clearLogs = (): void => {
  hubLog.length = 0;
  cdnLog.length = 0;
};

let hub: Server,
  cdn: Server,
  hubBase = '',
  cdnBase = '';

const listen = (s: Server): Promise<string> =>
  new Promise((res) =>
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      res(`http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`);
    }),
  );

function fail(res: import('node:http').ServerResponse, status: number, code?: string): void {
  res.writeHead(status, code ? { 'X-Error-Code': code, 'X-Error-Message': `${code} (fake hub)` } : {});
  res.end();
}

before(async () => {
  hub = createServer((req, res) => {
    hubLog.push({ url: req.url!, headers: req.headers });
    const u = new URL(req.url!, 'http://x');
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(u.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(u.pathname);
    const repo = api?.[1] ?? resolve?.[1];
    const rev = decodeURIComponent((api ?? resolve)?.[2] ?? '');
    if (repo === 'acme/broken') return fail(res, 500);
    if (repo === 'acme/gated' && resolve) return fail(res, 403, 'GatedRepo');
    if (repo === 'acme/private' && req.headers.authorization !== 'Bearer secret') return fail(res, 401);
    if (repo === 'acme/evil' && api) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify({ sha: COMMIT, siblings: [{ rfilename: '../../escape.json', size: 2 }] }));
    }
    if (repo === undefined || !['acme/pipe', 'acme/private', 'acme/gated'].includes(repo))
      return fail(res, 404, 'RepoNotFound');
    const sha = rev === 'main' || rev === COMMIT ? COMMIT : rev === 'refs/pr/1' || rev === PR_COMMIT ? PR_COMMIT : null;
    if (sha === null) return fail(res, 404, 'RevisionNotFound');
    if (api) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(
        JSON.stringify({
          id: repo,
          sha,
          siblings: [...FILES].map(([p, b]) =>
            isLfs(p)
              ? { rfilename: p, size: b.length, lfs: { sha256: sha256(b), size: b.length } }
              : { rfilename: p, size: b.length },
          ),
        }),
      );
    }
    const path = decodeURIComponent(resolve![3]!);
    const body = FILES.get(path);
    if (body === undefined) return fail(res, 404, 'EntryNotFound');
    if (isLfs(path)) {
      res.writeHead(302, {
        Location: `${cdnBase}/blob/${sha256(body)}?signature=x`,
        'X-Repo-Commit': sha,
        'X-Linked-Etag': `"${sha256(body)}"`,
        'X-Linked-Size': String(body.length + mode.sizeDelta),
        ETag: 'W/"not-the-content-hash"',
      });
      return res.end();
    }
    res.writeHead(200, { 'X-Repo-Commit': sha, ETag: `"${gitOid(body)}"`, 'Content-Length': body.length });
    res.end(body);
  });
  cdn = createServer((req, res) => {
    cdnLog.push({ url: req.url!, headers: req.headers });
    const want = /^\/blob\/([0-9a-f]{64})/.exec(req.url!)?.[1];
    let body = [...FILES.values()].find((b) => sha256(b) === want);
    if (body === undefined) return fail(res, 404);
    if (mode.corrupt) {
      body = Buffer.from(body);
      body[body.length >> 1]! ^= 0xff;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !mode.ignoreRange) {
      const start = Number(range[1]);
      res.writeHead(206, {
        'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}`,
        'Content-Length': body.length - start,
      });
      return res.end(body.subarray(start));
    }
    res.writeHead(200, { 'Content-Length': body.length, ETag: '"cdn-etag"' });
    if (mode.cutAfter > 0) {
      res.write(body.subarray(0, mode.cutAfter));
      setTimeout(() => res.destroy(), 50);
      return;
    }
    res.end(body);
  });
  hubBase = await listen(hub);
  cdnBase = await listen(cdn);
});
after(() => {
  hub.closeAllConnections();
  cdn.closeAllConnections();
  hub.close();
  cdn.close();
});

/** Options for one test: this fake hub, a cache of its own, no token, online. */
function opts(
  cacheDir: string,
  extra: HubOptions & { allow?: string[]; folder?: string } = {},
): HubOptions & { allow?: string[]; folder?: string } {
  return { endpoint: hubBase, cacheDir, token: '', offline: false, ...extra };
}
const noNetwork: typeof fetch = () => {
  throw new Error('network used');
};
const ALLOW = ['model_index.json', 'vae/config.json', 'vae/*.safetensors'];
const repoDir = (cache: string, repo = REPO): string => join(cache, repoFolderName(repo));

async function rejectsWith(p: Promise<unknown>, code: string, ...mentions: string[]): Promise<ImmunizeError> {
  let err: unknown;
  await assert.rejects(p, (e) => {
    err = e;
    return true;
  });
  assert.ok(err instanceof ImmunizeError, `expected an ImmunizeError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  for (const m of mentions) assert.ok(err.message.includes(m), `message should mention ${m}: ${err.message}`);
  return err;
}

describe('names and places', () => {
  test('isRepoId accepts owner/name ids and rejects paths and malformed ids', () => {
    for (const id of [
      'stable-diffusion-v1-5/stable-diffusion-v1-5',
      'madebyollin/taesd',
      'CompVis/stable-diffusion-v1-4',
      'a/b',
      'user_1/model.v2',
      'x/_private',
    ]) {
      assert.equal(isRepoId(id), true, id);
    }
    for (const s of [
      'taesd',
      'a/b/c',
      '/abs/x',
      './x/y',
      '../x/y',
      'a/../b',
      'a/..b',
      'a--b/c',
      'a/b--c',
      'owner/-x',
      '-owner/x',
      'owner/x.',
      'owner/',
      '/name',
      'a b/c',
      'a/b c',
      'owner/name.safetensors',
      'vae/model.bin',
      'C:\\models\\x',
      `owner/${'x'.repeat(97)}`,
      '',
    ]) {
      assert.equal(isRepoId(s), false, s);
    }
    const cwd = process.cwd();
    mkdirSync(join(work, 'local', 'model'), { recursive: true });
    process.chdir(work);
    try {
      assert.equal(isRepoId('local/model'), false, 'an existing relative path is a path');
      assert.equal(isRepoId('local/other'), true);
    } finally {
      process.chdir(cwd);
    }
  });

  test('repoFolderName follows huggingface_hub', () => {
    assert.equal(repoFolderName('acme/pipe'), 'models--acme--pipe');
    assert.equal(repoFolderName('acme/data', 'dataset'), 'datasets--acme--data');
  });

  test('hubCacheDir: HF_HUB_CACHE, then HF_HOME/hub, then XDG_CACHE_HOME, then ~/.cache', () => {
    assert.equal(hubCacheDir({ HF_HUB_CACHE: '/x/hub', HF_HOME: '/y', HOME: '/h' }), '/x/hub');
    assert.equal(hubCacheDir({ HUGGINGFACE_HUB_CACHE: '/old', HOME: '/h' }), '/old');
    assert.equal(hubCacheDir({ HF_HOME: '/y', XDG_CACHE_HOME: '/z', HOME: '/h' }), join('/y', 'hub'));
    assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/z', HOME: '/h' }), join('/z', 'huggingface', 'hub'));
    assert.equal(hubCacheDir({ HOME: '/h' }), join('/h', '.cache', 'huggingface', 'hub'));
    assert.equal(hubCacheDir({ HF_HOME: '~/hf', HOME: '/h' }), join('/h', 'hf', 'hub'));
    assert.equal(
      hubCacheDir({ HF_HUB_CACHE: '', HOME: '/h' }),
      join('/h', '.cache', 'huggingface', 'hub'),
      'an empty variable counts as unset',
    );
  });

  test('allow patterns: * stays in one folder, ** crosses folders, a trailing / takes the folder', () => {
    const m = (p: string, s: string): boolean => globToRegExp(p).test(s);
    assert.equal(m('*.json', 'model_index.json'), true);
    assert.equal(m('*.json', 'unet/config.json'), false);
    assert.equal(m('vae/*.safetensors', WEIGHTS), true);
    assert.equal(m('vae/*.safetensors', 'vae/sub/x.safetensors'), false);
    assert.equal(m('**/*.json', 'unet/config.json'), true);
    assert.equal(m('**/*.json', 'model_index.json'), true);
    assert.equal(m('vae/', 'vae/config.json'), true);
    assert.equal(m('model?index.json', 'model_index.json'), true);
    assert.equal(m('model.index.json', 'model_index.json'), false, '. is literal');
    assert.equal(m('[!u]*/config.json', 'vae/config.json'), true);
    assert.equal(m('[!u]*/config.json', 'unet/config.json'), false);
  });
});

describe('downloads from a fake hub', () => {
  const cache = freshCache();
  const progress: [string, number, number][] = [];
  let dir = '';

  test('snapshot with allow: lists once, fetches only the allowed files, with the revision in the URL', async () => {
    clearLogs();
    dir = await snapshot(REPO, opts(cache, { allow: ALLOW, onProgress: (f, d, t) => progress.push([f, d, t]) }));
    assert.equal(dir, join(repoDir(cache), 'snapshots', COMMIT));
    const urls = hubLog.map((r) => r.url);
    assert.deepEqual(
      urls.sort(),
      [
        `/${REPO}/resolve/${COMMIT}/model_index.json`,
        `/${REPO}/resolve/${COMMIT}/vae/config.json`,
        `/${REPO}/resolve/${COMMIT}/${WEIGHTS}`,
        `/api/models/${REPO}/revision/main?blobs=true`,
      ].sort(),
    );
    assert.deepEqual(
      cdnLog.map((r) => r.url),
      [`/blob/${WEIGHTS_SHA}?signature=x`],
    );
    assert.ok(
      hubLog.every((r) => r.headers.authorization === undefined),
      'no token, no Authorization header',
    );
    assert.ok(hubLog.every((r) => r.headers['accept-encoding'] === 'identity'));
    assert.deepEqual(readdirSync(dir).sort(), ['model_index.json', 'vae']);
    assert.deepEqual(readdirSync(join(dir, 'vae')).sort(), ['config.json', 'diffusion_pytorch_model.safetensors']);
    assert.deepEqual(readFileSync(join(dir, WEIGHTS)), weights);
  });

  test('the cache is laid out as huggingface_hub writes it', () => {
    const root = repoDir(cache);
    assert.equal(readFileSync(join(root, 'refs', 'main'), 'utf8'), COMMIT);
    const blobs = readdirSync(join(root, 'blobs')).sort();
    assert.deepEqual(
      blobs,
      ['model_index.json', 'vae/config.json', WEIGHTS].map(etagOf).sort(),
      'blobs are named by etag (git oid, or sha256 for LFS)',
    );
    for (const [path, up] of [
      ['model_index.json', ['..', '..']],
      ['vae/config.json', ['..', '..', '..']],
      [WEIGHTS, ['..', '..', '..']],
    ] as const) {
      const pointer = join(root, 'snapshots', COMMIT, ...path.split('/'));
      assert.ok(lstatSync(pointer).isSymbolicLink(), path);
      const target = readlinkSync(pointer);
      assert.ok(!isAbsolute(target), `${path} links relatively: ${target}`);
      assert.equal(target, join(...up, 'blobs', etagOf(path)));
      assert.equal(realpathSync(pointer), realpathSync(join(root, 'blobs', etagOf(path))));
      assert.deepEqual(readFileSync(pointer), FILES.get(path));
    }
    assert.ok(!existsSync(join(root, 'snapshots', COMMIT, 'unet')), 'unet/ was not downloaded');
  });

  test('progress is reported per chunk up to the full size', () => {
    const w = progress.filter(([f]) => f === WEIGHTS);
    assert.ok(w.length >= 2, `several chunks (${w.length})`);
    assert.deepEqual(w.at(-1), [WEIGHTS, weights.length, weights.length]);
    for (let i = 1; i < w.length; i++) assert.ok(w[i]![1] > w[i - 1]![1]);
  });

  test('a second call is a cache hit: no request at all', async () => {
    clearLogs();
    assert.equal(await snapshot(REPO, opts(cache, { allow: ALLOW })), dir);
    assert.equal(await hubFile(REPO, WEIGHTS, opts(cache)), join(dir, WEIGHTS));
    const listed = await listRepoFiles(REPO, opts(cache));
    assert.deepEqual(
      listed.map((f) => f.path),
      [...FILES.keys()].sort(),
      'the listing of the commit is cached too',
    );
    assert.equal(listed.find((f) => f.path === WEIGHTS)?.size, weights.length);
    assert.deepEqual(
      (await listRepoFiles(REPO, opts(cache, { folder: 'vae' }))).map((f) => f.path),
      ['vae/config.json', WEIGHTS],
    );
    assert.deepEqual([...hubLog, ...cdnLog], []);
  });

  test('a file missing from the cached snapshot is fetched for the cached commit', async () => {
    clearLogs();
    const p = await hubFile(REPO, 'unet/config.json', opts(cache));
    assert.equal(p, join(dir, 'unet', 'config.json'));
    assert.deepEqual(
      hubLog.map((r) => r.url),
      [`/${REPO}/resolve/${COMMIT}/unet/config.json`],
    );
  });

  test('offline with a cache: everything comes from disk, fetch is never called', async () => {
    assert.equal(await snapshot(REPO, opts(cache, { allow: ALLOW, offline: true, fetch: noNetwork })), dir);
    assert.equal(await hubFile(REPO, WEIGHTS, opts(cache, { offline: true, fetch: noNetwork })), join(dir, WEIGHTS));
    const files = await listRepoFiles(REPO, opts(cache, { offline: true, fetch: noNetwork }));
    assert.deepEqual(
      files,
      [
        { path: 'model_index.json', size: FILES.get('model_index.json')!.length },
        { path: 'unet/config.json', size: FILES.get('unet/config.json')!.length },
        { path: 'vae/config.json', size: FILES.get('vae/config.json')!.length },
        { path: WEIGHTS, size: weights.length },
      ],
      'offline, the listing is what the cache holds',
    );
    process.env['HF_HUB_OFFLINE'] = '1';
    try {
      const o = opts(cache, { fetch: noNetwork });
      delete o.offline;
      assert.equal(await hubFile(REPO, 'vae/config.json', o), join(dir, 'vae', 'config.json'));
    } finally {
      delete process.env['HF_HUB_OFFLINE'];
    }
  });

  test('offline: what the cache lacks is an E_HUB_OFFLINE error naming it and the cache', async () => {
    await rejectsWith(
      hubFile(REPO, 'unet/diffusion_pytorch_model.safetensors', opts(cache, { offline: true, fetch: noNetwork })),
      'E_HUB_OFFLINE',
      'unet/diffusion_pytorch_model.safetensors',
      REPO,
      cache,
    );
    await rejectsWith(
      snapshot(REPO, opts(cache, { allow: ['text_encoder/*'], offline: true, fetch: noNetwork })),
      'E_HUB_OFFLINE',
      'text_encoder/*',
    );
    const empty = freshCache();
    await rejectsWith(
      snapshot(REPO, opts(empty, { allow: ALLOW, offline: true, fetch: noNetwork })),
      'E_HUB_OFFLINE',
      REPO,
      'main',
      empty,
    );
    await rejectsWith(listRepoFiles(REPO, opts(empty, { offline: true, fetch: noNetwork })), 'E_HUB_OFFLINE', REPO);
  });

  test('a blob already cached for another commit is linked, not downloaded again', async () => {
    clearLogs();
    const pr = await snapshot(REPO, opts(cache, { revision: 'refs/pr/1', allow: [WEIGHTS] }));
    assert.equal(pr, join(repoDir(cache), 'snapshots', PR_COMMIT));
    assert.ok(
      hubLog.some((r) => r.url === `/api/models/${REPO}/revision/refs%2Fpr%2F1?blobs=true`),
      'the revision is URL-encoded',
    );
    assert.equal(
      readFileSync(join(repoDir(cache), 'refs', 'refs', 'pr', '1'), 'utf8'),
      PR_COMMIT,
      'nested ref, as huggingface_hub',
    );
    assert.deepEqual(cdnLog, []);
    assert.deepEqual(readFileSync(join(pr, WEIGHTS)), weights);
  });
});

describe('resume and verification', () => {
  const half = weights.length >> 1;
  const setup = (prefix: Buffer): { cache: string; part: string; blob: string } => {
    const cache = freshCache();
    const blobs = join(repoDir(cache), 'blobs');
    mkdirSync(blobs, { recursive: true });
    const part = join(blobs, `${WEIGHTS_SHA}.incomplete`);
    writeFileSync(part, prefix);
    return { cache, part, blob: join(blobs, WEIGHTS_SHA) };
  };

  test('a partial blob is resumed with a Range request', async () => {
    resetMode();
    clearLogs();
    const { cache, part, blob } = setup(weights.subarray(0, half));
    const seen: number[] = [];
    const p = await hubFile(REPO, WEIGHTS, opts(cache, { onProgress: (_f, d) => seen.push(d) }));
    assert.deepEqual(
      cdnLog.map((r) => r.headers.range),
      [`bytes=${half}-`],
    );
    assert.deepEqual(readFileSync(p), weights);
    assert.ok(existsSync(blob) && !existsSync(part));
    assert.ok(seen[0]! > half && seen.at(-1) === weights.length, 'progress counts from the resumed offset');
  });

  test('a server that ignores Range (200) restarts from zero', async () => {
    resetMode();
    mode.ignoreRange = true;
    clearLogs();
    const { cache } = setup(bytes(half, 99)); // a wrong prefix: kept, it would fail the sha256 check
    const p = await hubFile(REPO, WEIGHTS, opts(cache));
    assert.equal(cdnLog[0]?.headers.range, `bytes=${half}-`);
    assert.deepEqual(readFileSync(p), weights);
    resetMode();
  });

  test('an interrupted download leaves a partial blob that the next run resumes', async () => {
    resetMode();
    mode.cutAfter = 100_000;
    const cache = freshCache();
    await rejectsWith(hubFile(REPO, WEIGHTS, opts(cache)), 'E_HUB_NETWORK', WEIGHTS, 'resume');
    const part = join(repoDir(cache), 'blobs', `${WEIGHTS_SHA}.incomplete`);
    const got = readFileSync(part).length;
    assert.ok(got > 0 && got < weights.length, `partial file of ${got} bytes`);
    resetMode();
    clearLogs();
    const p = await hubFile(REPO, WEIGHTS, opts(cache));
    assert.deepEqual(
      cdnLog.map((r) => r.headers.range),
      [`bytes=${got}-`],
    );
    assert.deepEqual(readFileSync(p), weights);
  });

  test('corrupted contents (sha256 mismatch) are an E_HUB_VERIFY error and leave no blob', async () => {
    resetMode();
    mode.corrupt = true;
    const cache = freshCache();
    await rejectsWith(hubFile(REPO, WEIGHTS, opts(cache)), 'E_HUB_VERIFY', WEIGHTS, WEIGHTS_SHA);
    assert.deepEqual(readdirSync(join(repoDir(cache), 'blobs')), []);
    assert.ok(!existsSync(join(repoDir(cache), 'snapshots', COMMIT, ...WEIGHTS.split('/'))));
    resetMode();
  });

  test('a size different from the announced one is an E_HUB_VERIFY error', async () => {
    resetMode();
    mode.sizeDelta = 1;
    const cache = freshCache();
    await rejectsWith(hubFile(REPO, WEIGHTS, opts(cache)), 'E_HUB_VERIFY', String(weights.length + 1));
    assert.deepEqual(readdirSync(join(repoDir(cache), 'blobs')), []);
    resetMode();
  });
});

describe('authentication and errors', () => {
  test('the token is sent to the hub, never to the CDN', async () => {
    clearLogs();
    const cache = freshCache();
    const dir = await snapshot('acme/private', opts(cache, { token: 'secret', allow: [WEIGHTS] }));
    assert.deepEqual(readFileSync(join(dir, WEIGHTS)), weights);
    assert.ok(hubLog.length === 2 && hubLog.every((r) => r.headers.authorization === 'Bearer secret'));
    assert.ok(cdnLog.length === 1 && cdnLog[0]!.headers.authorization === undefined);
  });

  test('the token file under HF_HOME is used when no token is given', async () => {
    mkdirSync(process.env['HF_HOME']!, { recursive: true });
    writeFileSync(join(process.env['HF_HOME']!, 'token'), 'secret\n');
    try {
      clearLogs();
      const o = opts(freshCache());
      delete o.token;
      await listRepoFiles('acme/private', o);
      assert.equal(hubLog[0]?.headers.authorization, 'Bearer secret');
    } finally {
      rmSync(join(process.env['HF_HOME']!, 'token'));
    }
  });

  test('401 → E_HUB_AUTH telling to set HF_TOKEN; a gated repo → E_HUB_AUTH naming the licence page', async () => {
    await rejectsWith(
      listRepoFiles('acme/private', opts(freshCache())),
      'E_HUB_AUTH',
      'HF_TOKEN',
      'acme/private',
      '401',
    );
    await rejectsWith(
      hubFile('acme/gated', 'vae/config.json', opts(freshCache())),
      'E_HUB_AUTH',
      'licence',
      `${hubBase}/acme/gated`,
    );
  });

  test('404 → E_HUB_NOT_FOUND naming the repo, the file and the revision', async () => {
    await rejectsWith(
      hubFile(REPO, 'vae/missing.json', opts(freshCache())),
      'E_HUB_NOT_FOUND',
      'vae/missing.json',
      REPO,
      'main',
    );
    await rejectsWith(
      snapshot(REPO, opts(freshCache(), { revision: 'v9', allow: ALLOW })),
      'E_HUB_NOT_FOUND',
      'v9',
      REPO,
    );
    await rejectsWith(listRepoFiles('acme/nothing', opts(freshCache())), 'E_HUB_NOT_FOUND', 'acme/nothing');
    await rejectsWith(
      snapshot(REPO, opts(freshCache(), { allow: ['text_encoder/*'] })),
      'E_HUB_NOT_FOUND',
      'text_encoder/*',
      REPO,
    );
  });

  test('connection refused and 5xx → E_HUB_NETWORK with the URL', async () => {
    const closed = createServer();
    const base = await listen(closed);
    await new Promise((r) => closed.close(r));
    await rejectsWith(
      listRepoFiles(REPO, opts(freshCache(), { endpoint: base })),
      'E_HUB_NETWORK',
      `${base}/api/models/${REPO}/revision/main`,
      'HF_HUB_OFFLINE',
    );
    await rejectsWith(
      hubFile('acme/broken', 'x.json', opts(freshCache())),
      'E_HUB_NETWORK',
      `${hubBase}/acme/broken/resolve/main/x.json`,
      '500',
    );
  });

  test('a listing with an unsafe path is refused and nothing is written outside the cache', async () => {
    const cache = freshCache();
    await rejectsWith(snapshot('acme/evil', opts(cache)), 'E_HUB_NETWORK', '../../escape.json');
    assert.ok(!existsSync(join(cache, 'escape.json')) && !existsSync(join(cache, '..', 'escape.json')));
  });

  test('a pinned commit is used as is: commit in the URLs, no ref written', async () => {
    clearLogs();
    const cache = freshCache();
    const dir = await snapshot(REPO, opts(cache, { revision: COMMIT, allow: ['model_index.json'] }));
    assert.equal(dir, join(repoDir(cache), 'snapshots', COMMIT));
    assert.deepEqual(
      hubLog.map((r) => r.url),
      [`/api/models/${REPO}/revision/${COMMIT}?blobs=true`, `/${REPO}/resolve/${COMMIT}/model_index.json`],
    );
    assert.ok(!existsSync(join(repoDir(cache), 'refs')));
  });
});

describe('a cache written by Python huggingface_hub', () => {
  const cache = freshCache();
  const root = repoDir(cache);
  before(() => {
    mkdirSync(join(root, 'refs'), { recursive: true });
    writeFileSync(join(root, 'refs', 'main'), COMMIT);
    mkdirSync(join(root, 'blobs'));
    for (const path of ['model_index.json', 'vae/config.json', WEIGHTS]) {
      writeFileSync(join(root, 'blobs', etagOf(path)), FILES.get(path)!);
      const pointer = join(root, 'snapshots', COMMIT, ...path.split('/'));
      mkdirSync(join(pointer, '..'), { recursive: true });
      symlinkSync(join(...(path.includes('/') ? ['..', '..', '..'] : ['..', '..']), 'blobs', etagOf(path)), pointer);
    }
  });

  test('files are read without network, online or offline', async () => {
    for (const offline of [false, true]) {
      const p = await hubFile(REPO, WEIGHTS, opts(cache, { offline, fetch: noNetwork }));
      assert.equal(p, join(root, 'snapshots', COMMIT, 'vae', 'diffusion_pytorch_model.safetensors'));
      assert.deepEqual(readFileSync(p), weights);
    }
    const pinned = await hubFile(REPO, 'vae/config.json', opts(cache, { revision: COMMIT, fetch: noNetwork }));
    assert.deepEqual(readFileSync(pinned), FILES.get('vae/config.json'));
  });

  test('snapshot and listing fall back to the cached snapshot when the hub is unreachable', async () => {
    const files = await listRepoFiles(REPO, opts(cache, { fetch: noNetwork }));
    assert.deepEqual(
      files.map((f) => f.path),
      ['model_index.json', 'vae/config.json', WEIGHTS],
    );
    assert.equal(
      await snapshot(REPO, opts(cache, { allow: ALLOW, fetch: noNetwork })),
      join(root, 'snapshots', COMMIT),
    );
    assert.equal(
      await snapshot(REPO, opts(cache, { allow: ALLOW, offline: true, fetch: noNetwork })),
      join(root, 'snapshots', COMMIT),
    );
    await rejectsWith(
      snapshot(REPO, opts(cache, { allow: ['unet/*'], offline: true, fetch: noNetwork })),
      'E_HUB_OFFLINE',
      'unet/*',
    );
  });
});
