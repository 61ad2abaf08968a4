// The progress line `immunize protect` shows: steps, rate, ETA and the attack's loss.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createProgress } from '../../src/io/progress.js';

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const chunks: string[] = [];
  const stream = {
    isTTY,
    write: (c: string) => {
      chunks.push(c);
      return true;
    },
  } as unknown as NodeJS.WriteStream;
  return { stream, text: () => chunks.join('') };
}

test('on a terminal: redrawn in place with count, ETA and the loss; done() ends the line', () => {
  process.env['IMMUNIZE_QUIET'] = '';
  const { stream, text } = fakeStream(true);
  const bar = createProgress({ label: 'photo.jpg', total: 10, unit: 'step', stream });
  bar.update(1, 'loss 0.5000');
  assert.ok(text().startsWith('\r\u001b[2K'), 'clears the line first');
  assert.match(text().slice(5), /^photo\.jpg \[#{2}\.{22}\] 1\/10 [\d.]+ step\/s eta \d+s \d+s {2}loss 0\.5000$/);
  bar.update(2, 'loss 0.4000'); // within 100 ms: not redrawn
  bar.update(10, 'loss 0.1000'); // the last step always is
  bar.done();
  assert.match(text(), /10\/10 .*loss 0\.1000\n$/);
  assert.doesNotMatch(text().split('\r').at(-1)!, /eta/, 'no ETA once finished');
});

test('not a terminal (CI logs, pipes): one summary line at the end; IMMUNIZE_QUIET=1: nothing', () => {
  process.env['IMMUNIZE_QUIET'] = '';
  const log = fakeStream(false);
  const bar = createProgress({ label: 'x', total: 3, unit: 'step', stream: log.stream });
  for (let i = 1; i <= 3; i++) bar.update(i, `loss ${i}`);
  assert.equal(log.text(), '');
  bar.done('loss 3 → 1');
  assert.match(log.text(), /^x \[#{24}\] 3\/3 .*loss 3 → 1\n$/);
  process.env['IMMUNIZE_QUIET'] = '1';
  const quiet = fakeStream(true);
  const q = createProgress({ label: 'x', total: 3, unit: 'step', stream: quiet.stream });
  q.update(1);
  q.done();
  assert.equal(quiet.text(), '');
  process.env['IMMUNIZE_QUIET'] = '';
});
