// registerWebPage: the built page at `/`, its files by exact routes with the right types and
// security headers, nothing outside the folder, and a clear 503 when the page is not built.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify from 'fastify';
import { registerWebPage } from '../../src/server/static-web.js';
import { tempDir } from '../web/harness.js';

function fakePage(): { path: string; remove(): void } {
  const dir = tempDir('immunize-static-');
  const root = join(dir.path, 'web');
  mkdirSync(join(root, 'assets'), { recursive: true });
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>page</title>');
  writeFileSync(join(root, 'styles.css'), 'body{}');
  writeFileSync(join(root, 'assets', 'main.js'), 'export {};');
  writeFileSync(join(root, 'assets', 'notes.txt'), 'not a web type');
  writeFileSync(join(dir.path, 'secret.json'), '{"secret":true}');
  return { path: root, remove: dir.remove };
}

describe('registerWebPage', () => {
  it('serves index.html at / and each built file with its content type and security headers', async () => {
    const page = fakePage();
    const app = Fastify();
    registerWebPage(app, { root: page.path });
    try {
      const index = await app.inject({ method: 'GET', url: '/' });
      assert.equal(index.statusCode, 200);
      assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
      assert.match(index.body, /<title>page<\/title>/);
      assert.match(String(index.headers['content-security-policy']), /default-src 'self'/);
      assert.equal(index.headers['x-content-type-options'], 'nosniff');
      assert.equal(index.headers['referrer-policy'], 'no-referrer');
      const js = await app.inject({ method: 'GET', url: '/assets/main.js' });
      assert.equal(js.statusCode, 200);
      assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
      const css = await app.inject({ method: 'GET', url: '/styles.css?v=1' });
      assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
      const head = await app.inject({ method: 'HEAD', url: '/' });
      assert.equal(head.statusCode, 200);
    } finally {
      await app.close();
      page.remove();
    }
  });

  it('serves nothing outside the folder or of an unlisted type', async () => {
    const page = fakePage();
    const app = Fastify();
    registerWebPage(app, { root: page.path });
    try {
      for (const url of [
        '/../secret.json',
        '/assets/../../secret.json',
        '/%2e%2e/secret.json',
        '/assets/%2e%2e%2f%2e%2e%2fsecret.json',
        '/assets/notes.txt',
        '/index.html/..',
        '/assets/',
        '/etc/passwd',
        '//etc/passwd',
      ]) {
        const r = await app.inject({ method: 'GET', url });
        assert.ok(
          r.statusCode === 404 || (r.statusCode === 200 && r.body.includes('<title>page</title>')),
          `${url}: ${r.statusCode} ${r.body.slice(0, 80)}`,
        );
        assert.ok(!r.body.includes('"secret":true'), `${url} leaked a file outside the page`);
      }
    } finally {
      await app.close();
      page.remove();
    }
  });

  it('answers 503 with how to build it when the page is not built', async () => {
    const dir = tempDir('immunize-static-');
    const app = Fastify();
    registerWebPage(app, { root: join(dir.path, 'missing') });
    try {
      const r = await app.inject({ method: 'GET', url: '/' });
      assert.equal(r.statusCode, 503);
      assert.match(r.body, /npm run build:web/);
    } finally {
      await app.close();
      dir.remove();
    }
  });
});
