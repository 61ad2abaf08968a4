/**
 * Serves the web page (built from web/ into dist/web/ by `npm run build:web`) at `/`.
 *
 * The files are listed once, at registration, and each gets its own exact GET route: a request
 * path is only ever a route key, never joined to a filesystem path, so there is no traversal to
 * guard against. Rebuilt files are read fresh on each request; new files need a restart.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

export interface WebPageOptions {
  /** Folder of the built page; default dist/web of this package. */
  root?: string;
  /** URL prefix, default `/` (the page at `/`, its assets under it). */
  prefix?: string;
}

/** dist/web next to this module's compiled location (dist/src/server/static-web.js). */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

/**
 * Same-origin only: the page loads nothing from elsewhere and talks only to this server. `blob:`
 * images are the user's own photo; `data:` is the empty favicon. The read tokens travel in URLs,
 * hence no referrer.
 */
const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    const st = statSync(p);
    return st.isDirectory() ? listFiles(p) : st.isFile() && TYPES[extname(name)] ? [p] : [];
  });
}

function send(reply: FastifyReply, file: string): FastifyReply {
  let body: Buffer;
  try {
    body = readFileSync(file);
  } catch {
    return reply.code(404).type('text/plain; charset=utf-8').send('not found');
  }
  return reply
    .headers(SECURITY_HEADERS)
    .header('Cache-Control', 'no-cache')
    .type(TYPES[extname(file)] ?? 'application/octet-stream')
    .send(body);
}

/**
 * Registers GET routes for the page: `/` (index.html) and every built file by its path under the
 * root (`/styles.css`, `/assets/main.js`, …). When the page is not built, `/` answers 503 with a
 * line saying how to build it, and the API keeps working.
 */
export function registerWebPage(app: FastifyInstance, opts: WebPageOptions = {}): void {
  const root = opts.root ?? DEFAULT_WEB_ROOT;
  const prefix = (opts.prefix ?? '/').replace(/\/?$/, '/');
  const index = join(root, 'index.html');
  if (!existsSync(index)) {
    app.get(prefix, (_req, reply) =>
      reply
        .code(503)
        .type('text/plain; charset=utf-8')
        .send('The web page is not built: run `npm run build:web` (the API under /v1 works without it).\n'),
    );
    return;
  }
  app.get(prefix, (_req, reply) => send(reply, index));
  for (const file of listFiles(root)) {
    const rel = relative(root, file).split(sep).join('/');
    if (rel === 'index.html') continue;
    app.get(prefix + rel, (_req, reply) => send(reply, file));
  }
}
