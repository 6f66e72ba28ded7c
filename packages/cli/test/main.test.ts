/**
 * main.ts loads the module of the one command a command line names; the top-level help lists
 * summaries without loading any, and those summaries are what the modules register.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { buildProgram, COMMANDS, commandNamed } from '../src/main.js';

const names = (program: Command) => program.commands.map((c) => c.name());

test('the top-level summaries are the descriptions the command modules register', async () => {
  const full = new Command('scaibunker');
  for (const load of new Set(Object.values(COMMANDS).map((c) => c.load))) (await load())(full);
  assert.deepEqual(
    Object.fromEntries(full.commands.map((c) => [c.name(), c.description()])),
    Object.fromEntries(Object.entries(COMMANDS).map(([name, c]) => [name, c.summary])),
  );
});

test('a command line names its first operand, or what help is asked about', () => {
  assert.equal(commandNamed(['bunker', 'ls', '--json']), 'bunker');
  assert.equal(commandNamed(['--help']), undefined);
  assert.equal(commandNamed(['help', 'image']), 'image');
  assert.equal(commandNamed(['-V']), undefined);
});

test('only the named command module is registered; help and unknown commands get the summaries', async () => {
  assert.deepEqual(names(await buildProgram(['bunker', 'ls'])), ['bunker']);
  assert.deepEqual(names(await buildProgram(['serve', '--port', '1'])), ['serve', 'controller', 'proxy', 'worker']);
  assert.deepEqual(names(await buildProgram(['help', 'group'])), ['image', 'group']);
  const stubs = Object.keys(COMMANDS);
  assert.deepEqual(names(await buildProgram(['--help'])), stubs);
  assert.deepEqual(names(await buildProgram([])), stubs);
  assert.deepEqual(names(await buildProgram(['bnker'])), stubs);
  // the stubs carry no verbs: the help listing loaded nothing
  for (const c of (await buildProgram([])).commands) assert.equal(c.commands.length, 0);
});
