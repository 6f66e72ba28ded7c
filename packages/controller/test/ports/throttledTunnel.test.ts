import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { ThrottledTunnel } from '../../src/ports/ThrottledTunnel.js';
import { TokenBucket } from '../../src/ports/TokenBucket.js';

test('a tunnel that ends and closes while its bytes wait unread still delivers them all, then ends', async () => {
  const inner = new PassThrough({ highWaterMark: 1024 * 1024 });
  const unlimited = () => new TokenBucket(1e12, 1e12);
  const t = new ThrottledTunnel(inner, unlimited(), unlimited());
  inner.end(Buffer.alloc(200_000, 1));
  t.read(0); // asks for data without taking any: the tunnel is read into the buffer, to its end
  await once(inner, 'close');
  assert.equal(t.destroyed, false, 'what it holds is still to be read');
  let got = 0;
  t.on('data', (c: Buffer) => (got += c.length));
  await once(t, 'end');
  assert.equal(got, 200_000);
});

test('a tunnel destroyed before its end ends the throttled one too', async () => {
  const inner = new PassThrough();
  const t = new ThrottledTunnel(inner, new TokenBucket(1000, 1000), new TokenBucket(1000, 1000));
  const closed = once(t, 'close');
  inner.destroy();
  await closed;
  assert.equal(t.destroyed, true);
});
