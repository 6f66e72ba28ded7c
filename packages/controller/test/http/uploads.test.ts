/**
 * File uploads take the body as raw bytes whatever its content type says — or when it names
 * none — over real HTTP (what curl --data-binary, editors and JSON files send).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { servedController } from '../helpers/fakeWorker.js';

const API = '/v1/modules/scaibunker';

/** A PUT with exactly these headers (no content type added when none is given). */
function put(url: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', headers: { ...headers, 'content-length': String(body.length) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('raw uploads', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let bunkerId: string;

  before(async () => {
    served = await servedController();
    const res = await fetch(`${served.url}${API}/bunkers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${served.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ image: 'minimal' }),
    });
    bunkerId = ((await res.json()) as { id: string }).id;
  });
  after(async () => served?.close());

  const cases: Array<[string, Record<string, string>, Buffer]> = [
    ['application/octet-stream', { 'content-type': 'application/octet-stream' }, Buffer.from([0, 1, 2, 255])],
    ['application/json (not parsed)', { 'content-type': 'application/json' }, Buffer.from('{"not": "parsed",')],
    ['text/plain', { 'content-type': 'text/plain; charset=utf-8' }, Buffer.from('hello\nworld\n')],
    ['form-urlencoded (curl --data-binary)', { 'content-type': 'application/x-www-form-urlencoded' }, Buffer.from('a=1&b=2\n')],
    ['no content type at all', {}, Buffer.from('raw bytes')],
  ];
  for (const [name, headers, body] of cases) {
    test(`${name}: stored byte for byte`, async () => {
      const path = `/tmp/upload-${name.replace(/\W+/g, '-')}`;
      const res = await put(
        `${served.url}${API}/bunkers/${bunkerId}/files?path=${encodeURIComponent(path)}`,
        { authorization: `Bearer ${served.adminKey}`, ...headers },
        body,
      );
      assert.equal(res.status, 200, res.text);
      assert.equal(JSON.parse(res.text).bytes, body.length);
      assert.deepEqual(served.worker.written.get(`${bunkerId}:${path}`), body);
    });
  }

  test('JSON routes still parse JSON and refuse what is not', async () => {
    const bad = await fetch(`${served.url}${API}/bunkers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${served.adminKey}`, 'content-type': 'text/plain' },
      body: 'image=minimal',
    });
    assert.ok(bad.status >= 400 && bad.status < 500, String(bad.status));
  });
});
