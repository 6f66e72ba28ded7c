/**
 * PooledHttpBody and httpGetBody against real sockets: bodies framed by a content-length read
 * into reused blocks (released chunks' blocks are read into again), node:http for anything else,
 * and the failures a download must see (a cut body, a refused connection, an abort, a bad head).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { httpGetBody, readErrorText } from '../../src/http/httpGetStream.js';
import { PooledHttpBody } from '../../src/http/PooledHttpBody.js';

const BODY = randomBytes(6 * 1024 * 1024 + 123);

async function listen(server: Server | net.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const signal = () => new AbortController().signal;

describe('PooledHttpBody', { timeout: 30_000 }, () => {
  let base: string;
  let server: Server;
  const rawServers: net.Server[] = [];

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/body') {
        res.writeHead(200, { 'content-length': BODY.length, 'x-seen-auth': req.headers.authorization ?? '' });
        // In pieces, so the client reads many times.
        let at = 0;
        const next = () => {
          while (at < BODY.length) {
            const piece = BODY.subarray(at, at + 200_000);
            at += piece.length;
            if (!res.write(piece)) return void res.once('drain', next);
          }
          res.end();
        };
        next();
      } else if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no length: chunked
        res.write(BODY.subarray(0, 1000));
        res.end(BODY.subarray(1000, 5000));
      } else if (req.url === '/cut') {
        res.writeHead(200, { 'content-length': BODY.length });
        res.write(BODY.subarray(0, 100_000), () => res.destroy());
      } else if (req.url === '/empty') {
        res.writeHead(204, { 'content-length': 0 });
        res.end();
      } else {
        const text = JSON.stringify({ error: { code: 'BLOB_NOT_FOUND', message: 'no' } });
        res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      }
    });
    base = await listen(server);
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of rawServers) await new Promise<void>((resolve) => s.close(() => resolve()));
  });

  /** A TCP server answering every connection with `answer` (raw bytes) and closing. */
  async function rawServer(answer: string): Promise<string> {
    const s = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => socket.end(answer));
    });
    rawServers.push(s);
    return listen(s);
  }

  it('reads a content-length body whole, with its status, headers and the request headers sent', async () => {
    const res = await httpGetBody(`${base}/body`, { headers: { authorization: 'Bearer t' }, signal: signal() });
    assert.ok(res instanceof PooledHttpBody);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(BODY.length));
    assert.equal(res.headers['x-seen-auth'], 'Bearer t');
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(Buffer.from(c as Buffer));
    assert.ok(Buffer.concat(chunks).equals(BODY));
  });

  it('reads released chunks’ blocks again: a few blocks carry the whole body', async () => {
    const res = (await httpGetBody(`${base}/body`, { headers: {}, signal: signal() })) as PooledHttpBody;
    const blocks = new Set<ArrayBufferLike>();
    const copy: Buffer[] = [];
    for await (const c of res) {
      const chunk = c as Buffer;
      blocks.add(chunk.buffer);
      copy.push(Buffer.from(chunk));
      res.release(chunk);
    }
    assert.ok(Buffer.concat(copy).equals(BODY), 'the bytes are intact although blocks were reused');
    // 6 MiB in 1 MiB blocks: without reuse that is 7 blocks; released ones come back at once here.
    assert.ok(blocks.size <= 2, `${blocks.size} blocks for a 6 MiB body`);
  });

  it('keeps bytes intact for a consumer slower than the socket (back-pressure), releasing late', async () => {
    const res = (await httpGetBody(`${base}/body`, { headers: {}, signal: signal() })) as PooledHttpBody;
    const held: Buffer[] = [];
    const copy: Buffer[] = [];
    for await (const c of res) {
      held.push(c as Buffer);
      // Release each chunk only a few chunks later, as an asynchronous disk write does.
      if (held.length > 3) {
        const old = held.shift() as Buffer;
        copy.push(Buffer.from(old));
        res.release(old);
      }
      await new Promise((r) => setImmediate(r));
    }
    for (const old of held) copy.push(Buffer.from(old));
    assert.ok(Buffer.concat(copy).equals(BODY));
  });

  it('hands a body not framed by a content-length to node:http', async () => {
    const res = await httpGetBody(`${base}/chunked`, { headers: {}, signal: signal() });
    assert.ok(!(res instanceof PooledHttpBody));
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(BODY.subarray(0, 5000)));
  });

  it('gives an error answer its status and small body; an empty one ends at once', async () => {
    const res = await httpGetBody(`${base}/missing`, { headers: {}, signal: signal() });
    assert.equal(res.statusCode, 404);
    assert.match(await readErrorText(res), /BLOB_NOT_FOUND/);
    const empty = await httpGetBody(`${base}/empty`, { headers: {}, signal: signal() });
    assert.equal(empty.statusCode, 204);
    assert.equal(await readErrorText(empty), '');
  });

  it('fails the stream when the connection ends before content-length bytes', async () => {
    const res = await httpGetBody(`${base}/cut`, { headers: {}, signal: signal() });
    let got = 0;
    await assert.rejects(
      (async () => {
        for await (const c of res) got += (c as Buffer).length;
      })(),
    );
    assert.ok(got <= 100_000, `${got} bytes`);
  });

  it('rejects a refused connection, an aborted request and an answer that is not HTTP', async () => {
    const closed = net.createServer();
    const url = await listen(closed);
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(httpGetBody(`${url}/x`, { headers: {}, signal: signal() }), /ECONNREFUSED/);

    // A server that never answers: only the signal ends the wait.
    const silent = net.createServer((socket) => socket.on('error', () => {}));
    rawServers.push(silent);
    const silentUrl = await listen(silent);
    const abort = new AbortController();
    const pending = httpGetBody(`${silentUrl}/x`, { headers: {}, signal: abort.signal });
    abort.abort(new Error('gave up'));
    await assert.rejects(pending, /gave up/);

    await assert.rejects(
      httpGetBody(`${await rawServer('SSH-2.0-nope\r\n\r\n')}/x`, { headers: {}, signal: signal() }),
      /not an HTTP\/1\.1 response/,
    );
    await assert.rejects(
      httpGetBody(`${await rawServer('HTTP/1.1 200 OK\r\n')}/x`, { headers: {}, signal: signal() }),
      /premature close/,
      'a head cut short',
    );
    await assert.rejects(
      httpGetBody(`${await rawServer('HTTP/1.1 200 OK\r\nbroken header\r\ncontent-length: 1\r\n\r\nx')}/x`, {
        headers: {},
        signal: signal(),
      }),
      /malformed response header/,
    );
    for (const headers of [{ authorization: 'Bearer x\r\nx-injected: 1' }, { 'bad name': 'v' }])
      await assert.rejects(httpGetBody(`${base}/body`, { headers, signal: signal() }), /invalid request header/);
    await assert.rejects(
      httpGetBody(`${await rawServer(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70_000)}\r\n`)}/x`, { headers: {}, signal: signal() }),
      /response head larger than/,
    );
  });
});
