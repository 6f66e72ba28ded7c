/**
 * Progress on long CLI work and `--json` everywhere: the progress line (a spinner on a terminal,
 * one line per step elsewhere, nothing with --json), every client verb taking --json, and the
 * interactive verbs refusing it rather than ignoring it.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import type { Command } from 'commander';
import { buildProgram, COMMANDS } from '../src/main.js';
import { Progress } from '../src/ui/progress.js';
import { runCli } from './support/runCli.js';

/** A stream that keeps what was written, claiming to be a terminal or not. */
function sink(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += chunk;
      cb();
    },
  }) as unknown as NodeJS.WriteStream;
  (stream as { isTTY: boolean }).isTTY = isTTY;
  return { stream, text: () => text };
}

test('not on a terminal: one line per new step (by key), then the outcome', () => {
  const out = sink(false);
  const p = new Progress(out.stream).start('baking x');
  p.step('baking x: pulling 1.0/4.0 MiB', 'pulling');
  p.step('baking x: pulling 2.0/4.0 MiB', 'pulling');
  p.step('baking x: mkfs', 'mkfs');
  p.succeed('x ready');
  assert.equal(out.text(), 'baking x\nbaking x: pulling 1.0/4.0 MiB\nbaking x: mkfs\nx ready\n');
});

test('quiet (--json): nothing on stderr whatever happens', () => {
  const out = sink(false);
  const p = new Progress(out.stream, true).start('forking');
  p.step('forking: snapshot creating');
  p.fail('forking failed');
  assert.equal(out.text(), '');
});

test('on a terminal: a redrawn spinner line with the current step, ending in a ✔ line', () => {
  const out = sink(true);
  const p = new Progress(out.stream).start('snapshotting bk_1');
  p.step('snapshotting bk_1: sn_1 creating', 'creating');
  p.succeed('snapshot sn_1 ready');
  const text = out.text();
  const clear = '\r\u001b[K';
  assert.ok(text.startsWith(`${clear}⠋ snapshotting bk_1`), JSON.stringify(text));
  assert.match(text.slice(text.lastIndexOf(clear) + clear.length), /^✔ snapshot sn_1 ready \(\d+ ms\)\n$/);
  assert.ok(!text.includes('snapshotting bk_1\n'), 'no plain lines on a terminal');
});

/** Every verb below a command (the verbs themselves, not the groups). */
function leaves(cmd: Command, path: string[] = []): Array<{ path: string; cmd: Command }> {
  if (cmd.commands.length === 0) return [{ path: path.join(' '), cmd }];
  return cmd.commands.flatMap((c) => leaves(c, [...path, c.name()]));
}

test('every client verb takes --json (the server commands are daemons)', async () => {
  const servers = new Set(['serve', 'controller', 'proxy', 'worker']);
  // commands that work on this host, not through a server: --json, but no --url
  const local = new Set(['certify']);
  let checked = 0;
  for (const name of Object.keys(COMMANDS)) {
    if (servers.has(name)) continue;
    const program = await buildProgram([name]);
    for (const leaf of leaves(program.commands.find((c) => c.name() === name) as Command, [name])) {
      const flags = leaf.cmd.options.map((o) => o.long);
      if (!local.has(name)) assert.ok(flags.includes('--url'), `${leaf.path} is a client verb`);
      assert.ok(flags.includes('--json'), `${leaf.path} takes --json`);
      checked++;
    }
  }
  assert.ok(checked > 40, `every verb was walked (${checked})`);
});

test('attach and shell refuse --json (an interactive terminal is not a document) with exit 2', async () => {
  for (const args of [
    ['bunker', 'attach', 'bk_00000000000000000000', 'ex_00000000000000000000', '--json'],
    ['bunker', 'shell', 'bk_00000000000000000000', '--json'],
  ]) {
    const run = await runCli([...args, '--url', 'http://127.0.0.1:9']);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--json does not apply to (attach|shell)/);
    assert.equal(run.stdout, '');
  }
});
