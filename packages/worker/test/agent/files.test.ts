import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { AgentClient } from '../../src/agent/AgentClient.js';
import { AgentError } from '../../src/agent/AgentError.js';
import { type RunningAgent, startAgent, stopAllAgents } from './helpers.js';

let agent: RunningAgent;
let client: AgentClient;
let root: string;

before(async () => {
  agent = startAgent();
  client = await AgentClient.connect(agent.socketPath);
  root = fs.mkdtempSync(path.join(agent.dir, 'files-'));
});

after(async () => {
  client?.close();
  await stopAllAgents();
});

const isAgentError = (code: string) => (e: unknown) => e instanceof AgentError && e.code === code;

async function readAll(p: string): Promise<{ data: Buffer; chunks: number[] }> {
  const parts: Buffer[] = [];
  for await (const chunk of client.readFile(p)) parts.push(Buffer.from(chunk));
  return { data: Buffer.concat(parts), chunks: parts.map((b) => b.length) };
}

function tempEntries(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.startsWith('.sb-write-'));
}

describe('write and read', () => {
  test('small text round trip', async () => {
    const p = path.join(root, 'hello.txt');
    const w = await client.writeFile(p, 'hello, bunker\n');
    assert.equal(w.bytes, 14);
    assert.equal(fs.readFileSync(p, 'utf8'), 'hello, bunker\n');
    assert.equal((await readAll(p)).data.toString(), 'hello, bunker\n');
  });

  test('empty file', async () => {
    const p = path.join(root, 'empty');
    assert.equal((await client.writeFile(p, Buffer.alloc(0))).bytes, 0);
    const r = await readAll(p);
    assert.equal(r.data.length, 0);
    assert.equal(fs.statSync(p).size, 0);
  });

  test('multi-MiB binary round trip, streamed in 64 KiB chunks', async () => {
    const data = crypto.randomBytes(5 * 1024 * 1024 + 12345);
    const p = path.join(root, 'blob.bin');
    assert.equal((await client.writeFile(p, data)).bytes, data.length);
    assert.ok(fs.readFileSync(p).equals(data));
    const r = await readAll(p);
    assert.ok(r.data.equals(data));
    assert.ok(r.chunks.every((n) => n > 0 && n <= 64 * 1024));
    assert.ok(r.chunks.length >= Math.ceil(data.length / (64 * 1024)));
  });

  test('write from an async iterable of odd-sized chunks', async () => {
    const parts = [1, 70_000, 3, 200_000, 1_048_577, 9].map((n) => crypto.randomBytes(n));
    async function* gen() {
      for (const b of parts) yield b;
    }
    const p = path.join(root, 'iter.bin');
    const w = await client.writeFile(p, gen());
    assert.equal(
      w.bytes,
      parts.reduce((a, b) => a + b.length, 0),
    );
    assert.ok(fs.readFileSync(p).equals(Buffer.concat(parts)));
  });

  test('replacement is atomic: readers see old or new content, never a mix', async () => {
    const p = path.join(root, 'atomic.txt');
    fs.writeFileSync(p, 'old content');
    let midway!: () => void;
    const reachedMidway = new Promise<void>((r) => {
      midway = r;
    });
    let resume!: () => void;
    const resumed = new Promise<void>((r) => {
      resume = r;
    });
    async function* slow() {
      yield Buffer.from('new ');
      midway();
      await resumed;
      yield Buffer.from('content');
    }
    const w = client.writeFile(p, slow());
    await reachedMidway;
    // the agent has opened its temp file in the same directory; the target is untouched
    await client.health(); // round trip: the OPEN and first chunk have been processed
    assert.equal(fs.readFileSync(p, 'utf8'), 'old content');
    assert.equal(tempEntries(root).length, 1);
    resume();
    await w;
    assert.equal(fs.readFileSync(p, 'utf8'), 'new content');
    assert.deepEqual(tempEntries(root), []);
  });

  test('a failing source aborts the write and leaves the old file intact', async () => {
    const p = path.join(root, 'keep.txt');
    fs.writeFileSync(p, 'keep me');
    async function* broken() {
      yield Buffer.from('partial');
      throw new Error('source failed');
    }
    await assert.rejects(client.writeFile(p, broken()), /source failed/);
    await client.health(); // the CANCEL has been processed
    assert.equal(fs.readFileSync(p, 'utf8'), 'keep me');
    assert.deepEqual(tempEntries(root), []);
  });

  test('an early agent error rejects even while the source is still producing', async () => {
    async function* endless() {
      yield Buffer.from('first');
      await new Promise(() => {}); // never produces again
    }
    await assert.rejects(client.writeFile(path.join(root, 'no-such-dir/f'), endless()), isAgentError('NOT_FOUND'));
  });

  test('mode, and mode preserved on overwrite', async () => {
    const p = path.join(root, 'secret');
    await client.writeFile(p, 'x', { mode: 0o600 });
    assert.equal(fs.statSync(p).mode & 0o7777, 0o600);
    await client.writeFile(p, 'y');
    assert.equal(fs.statSync(p).mode & 0o7777, 0o600);
    await client.writeFile(p, 'z', { mode: 0o755 });
    assert.equal(fs.statSync(p).mode & 0o7777, 0o755);
    assert.equal(fs.readFileSync(p, 'utf8'), 'z');
  });

  test('mkdirParents creates missing directories; without it NOT_FOUND', async () => {
    const p = path.join(root, 'deep/er/still/file.txt');
    await assert.rejects(client.writeFile(p, 'x'), isAgentError('NOT_FOUND'));
    await client.writeFile(p, 'x', { mkdirParents: true });
    assert.equal(fs.readFileSync(p, 'utf8'), 'x');
  });

  test('errors: read of a missing file throws before the first chunk; dirs are rejected', async () => {
    const it = client.readFile(path.join(root, 'missing'))[Symbol.asyncIterator]();
    await assert.rejects(it.next(), isAgentError('NOT_FOUND'));
    await assert.rejects(readAll(root), isAgentError('IS_A_DIRECTORY'));
    await assert.rejects(client.writeFile(root, 'x'), isAgentError('IS_A_DIRECTORY'));
    const f = path.join(root, 'plainfile');
    fs.writeFileSync(f, 'x');
    await assert.rejects(client.writeFile(path.join(f, 'child'), 'x'), isAgentError('NOT_A_DIRECTORY'));
  });

  test('breaking out of a read cancels it; the connection stays usable', async () => {
    const p = path.join(root, 'big-for-cancel.bin');
    fs.writeFileSync(p, crypto.randomBytes(4 * 1024 * 1024));
    let got = 0;
    for await (const chunk of client.readFile(p)) {
      got += chunk.length;
      break;
    }
    assert.ok(got > 0 && got <= 64 * 1024);
    const h = await client.health();
    assert.equal(h.pid, agent.pid);
    assert.equal((await readAll(path.join(root, 'hello.txt'))).data.toString(), 'hello, bunker\n');
  });
});

describe('stat, list, mkdir, remove, chmod', () => {
  test('stat: file, dir, symlink', async () => {
    const f = path.join(root, 'stat-file');
    fs.writeFileSync(f, 'abcdef', { mode: 0o640 });
    fs.chmodSync(f, 0o640);
    const s = await client.stat(f);
    const hs = fs.lstatSync(f);
    assert.equal(s.type, 'file');
    assert.equal(s.path, f);
    assert.equal(s.name, 'stat-file');
    assert.equal(s.size, 6);
    assert.equal(s.mode, 0o640);
    assert.equal(s.mtime_ms, Math.floor(hs.mtimeMs));
    assert.equal(s.link_target, undefined);

    const d = await client.stat(root);
    assert.equal(d.type, 'dir');

    const l = path.join(root, 'stat-link');
    fs.symlinkSync('stat-file', l);
    const ls = await client.stat(l);
    assert.equal(ls.type, 'symlink');
    assert.equal(ls.link_target, 'stat-file');

    const root0 = await client.stat('/');
    assert.equal(root0.type, 'dir');
    assert.equal(root0.name, '/');
  });

  test('list: entries with stat fields, sorted by name', async () => {
    const d = path.join(root, 'listing');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'b.txt'), '12345');
    fs.mkdirSync(path.join(d, 'a-dir'));
    fs.symlinkSync('/etc/hostname', path.join(d, 'c-link'));
    fs.writeFileSync(path.join(d, 'ünïcødé name'), '');
    const entries = await client.list(`${d}/`);
    assert.deepEqual(
      entries.map((e) => [e.name, e.type]),
      [
        ['a-dir', 'dir'],
        ['b.txt', 'file'],
        ['c-link', 'symlink'],
        ['ünïcødé name', 'file'],
      ],
    );
    const b = entries.find((e) => e.name === 'b.txt');
    assert.equal(b?.size, 5);
    assert.equal(b?.path, path.join(d, 'b.txt'));
    assert.equal(entries.find((e) => e.name === 'c-link')?.link_target, '/etc/hostname');
    assert.deepEqual(await client.list(path.join(d, 'a-dir')), []);
  });

  test('list: many entries span several frames; over 10,000 is refused', async () => {
    const d = path.join(root, 'many');
    fs.mkdirSync(d);
    const long = 'n'.repeat(180);
    for (let i = 0; i < 3000; i++) fs.writeFileSync(path.join(d, `${long}-${String(i).padStart(5, '0')}`), '');
    const entries = await client.list(d);
    assert.equal(entries.length, 3000);
    assert.equal(new Set(entries.map((e) => e.name)).size, 3000);
    assert.equal(entries[0]?.name, `${long}-00000`);

    const huge = path.join(root, 'huge');
    fs.mkdirSync(huge);
    for (let i = 0; i < 10_001; i++) fs.writeFileSync(path.join(huge, String(i)), '');
    await assert.rejects(client.list(huge), isAgentError('TOO_MANY_ENTRIES'));
    fs.rmSync(path.join(huge, '0'));
    assert.equal((await client.list(huge)).length, 10_000);
  });

  test('list errors', async () => {
    await assert.rejects(client.list(path.join(root, 'hello.txt')), isAgentError('NOT_A_DIRECTORY'));
    await assert.rejects(client.list(path.join(root, 'nope')), isAgentError('NOT_FOUND'));
  });

  test('mkdir, with and without parents', async () => {
    const d = path.join(root, 'mk');
    await client.mkdir(d);
    assert.ok(fs.statSync(d).isDirectory());
    assert.equal(fs.statSync(d).mode & 0o777, 0o755);
    await assert.rejects(client.mkdir(d), isAgentError('ALREADY_EXISTS'));
    await assert.rejects(client.mkdir(path.join(root, 'mk2/a/b')), isAgentError('NOT_FOUND'));
    await client.mkdir(path.join(root, 'mk2/a/b'), { parents: true });
    assert.ok(fs.statSync(path.join(root, 'mk2/a/b')).isDirectory());
    await client.mkdir(path.join(root, 'mk2/a/b'), { parents: true }); // existing: fine
    fs.writeFileSync(path.join(root, 'mkfile'), '');
    await assert.rejects(client.mkdir(path.join(root, 'mkfile'), { parents: true }), isAgentError('ALREADY_EXISTS'));
    await assert.rejects(client.mkdir(path.join(root, 'mkfile/sub'), { parents: true }), isAgentError('NOT_A_DIRECTORY'));
  });

  test('remove: file, empty dir, NOT_EMPTY, recursive, symlinks not followed', async () => {
    const f = path.join(root, 'rm-file');
    fs.writeFileSync(f, 'x');
    await client.remove(f);
    assert.equal(fs.existsSync(f), false);
    await assert.rejects(client.remove(f), isAgentError('NOT_FOUND'));

    const d = path.join(root, 'rm-tree');
    fs.mkdirSync(path.join(d, 'a/b/c'), { recursive: true });
    fs.writeFileSync(path.join(d, 'a/b/c/f'), 'x');
    fs.writeFileSync(path.join(d, 'top'), 'x');
    // a symlink inside the tree pointing outside it: only the link may go
    const outside = path.join(root, 'rm-outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'precious'), 'x');
    fs.symlinkSync(outside, path.join(d, 'a/link-out'));
    await assert.rejects(client.remove(d), isAgentError('NOT_EMPTY'));
    await client.remove(d, { recursive: true });
    assert.equal(fs.existsSync(d), false);
    assert.equal(fs.readFileSync(path.join(outside, 'precious'), 'utf8'), 'x');

    const empty = path.join(root, 'rm-empty');
    fs.mkdirSync(empty);
    await client.remove(empty);
    assert.equal(fs.existsSync(empty), false);

    await assert.rejects(client.remove('/', { recursive: true }), isAgentError('INVALID_PATH'));
  });

  test('chmod', async () => {
    const f = path.join(root, 'ch');
    fs.writeFileSync(f, '#!/bin/sh\necho ran\n');
    await client.chmod(f, 0o700);
    assert.equal(fs.statSync(f).mode & 0o7777, 0o700);
    const r = await client.exec({ argv: [f] });
    assert.equal(r.exitCode, 0);
    await client.chmod(f, 0o4755);
    assert.equal(fs.statSync(f).mode & 0o7777, 0o4755);
    await assert.rejects(client.chmod(path.join(root, 'nope'), 0o600), isAgentError('NOT_FOUND'));
    await assert.rejects(client.chmod(f, 0o70000), isAgentError('INVALID_ARGUMENT'));
  });
});

describe('path validation', () => {
  const bad = ['/tmp/../etc/passwd', '/..', '/a/b/..', 'relative/path', '', '/tmp/a\0b'];

  for (const p of bad) {
    test(`rejects ${JSON.stringify(p)} everywhere with INVALID_PATH`, async () => {
      const inv = isAgentError('INVALID_PATH');
      await assert.rejects(client.stat(p), inv);
      await assert.rejects(client.list(p), inv);
      await assert.rejects(readAll(p), inv);
      await assert.rejects(client.writeFile(p, 'x'), inv);
      await assert.rejects(client.mkdir(p, { parents: true }), inv);
      await assert.rejects(client.remove(p, { recursive: true }), inv);
      await assert.rejects(client.chmod(p, 0o777), inv);
    });
  }

  test('names that merely contain dots are fine', async () => {
    const p = path.join(root, '..hidden...');
    await client.writeFile(p, 'dots');
    assert.equal((await client.stat(p)).name, '..hidden...');
    assert.equal(fs.readFileSync(p, 'utf8'), 'dots');
  });
});
