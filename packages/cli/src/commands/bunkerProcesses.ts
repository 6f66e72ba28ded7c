/**
 * `scaibunker bunker ps | attach | kill | shell | watch`: a bunker's processes, terminals and
 * file changes (registered under `bunker` by bunker.ts).
 */
import { schemas } from '@scaibunker/core';
import { Bunker, type ProcessInfo, type ProcessSignal, type ProcessState, type Terminal } from '@scaibunker/sdk';
import { type Command, Option } from 'commander';
import { age, renderTable } from '../ui/table.js';
import { runTerminalSession, type TerminalOutcome } from '../ui/terminalSession.js';
import {
  type ClientFlags,
  clientAction,
  clientFrom,
  exitCodeOf,
  positiveInt,
  printJson,
  withClientOptions,
  writeStdout,
} from './clientCommand.js';

function processRows(items: ProcessInfo[]): string {
  return renderTable(
    ['EXEC ID', 'STATE', 'PID', 'TAG', 'STARTED', 'COMMAND'],
    items.map((p) => [
      p.exec_id,
      p.state === 'exited' ? `exited(${p.exit_code})` : p.state === 'killed' ? `killed(${p.signal})` : p.state,
      p.pid === null ? '-' : String(p.pid),
      p.tag ?? '-',
      `${age(p.started_at)} ago`,
      p.command.length > 60 ? `${p.command.slice(0, 57)}...` : p.command.replace(/\n/g, '\\n'),
    ]),
  );
}

/** The CLI's exit code for a terminal session: the process's (128+N for a signal), 0 after a detach. */
function sessionExitCode(outcome: TerminalOutcome): number {
  if (outcome.detached) return 0;
  return exitCodeOf({ ...outcome.exit, timed_out: outcome.exit.state === 'timed_out' });
}

/** The terminal size to ask for: this terminal's when stdout is one. */
function localSize(): { cols?: number; rows?: number } {
  return process.stdout.isTTY ? { cols: process.stdout.columns, rows: process.stdout.rows } : {};
}

async function interactive(terminal: Terminal, forwardStdin: boolean, detachHint: string): Promise<number> {
  const outcome = await runTerminalSession(terminal, {
    forwardStdin,
    // Said once raw mode is on, so what is typed after it reaches the process.
    onReady: () => {
      if (process.stdin.isTTY) process.stderr.write('(Ctrl-] detaches)\r\n');
    },
  });
  if (outcome.detached) process.stderr.write(`\r\ndetached; ${detachHint}\n`);
  return sessionExitCode(outcome);
}

/** Interactive verbs are a terminal, not a document: `--json` there is refused rather than ignored. */
function refuseJson(cmd: Command, verb: string, instead: string): never {
  cmd.error(`error: --json does not apply to ${verb} (an interactive terminal); for machine output use: scaibunker bunker ${instead}`, {
    exitCode: 2,
    code: 'scaibunker.usage',
  });
}

export function registerProcessCommands(bunker: Command): void {
  withClientOptions(
    bunker
      .command('ps')
      .description("List a bunker's processes (running and recent execs), newest first")
      .argument('<id>', 'bunker id')
      .addOption(new Option('--state <state>', 'only processes in this state').choices(schemas.PROCESS_STATES))
      .option('--tag <tag>', 'only processes started with this tag')
      .option('--limit <n>', 'page size (1-200)', positiveInt)
      .option('--all', 'follow the cursor through every page'),
  ).action(
    clientAction(async (id: string, o: ClientFlags & { state?: ProcessState; tag?: string; limit?: number; all?: boolean }) => {
      const b = await Bunker.connect(id, await clientFrom(o));
      const listing = b.processes.list({
        ...(o.state ? { state: o.state } : {}),
        ...(o.tag ? { tag: o.tag } : {}),
        ...(o.limit ? { limit: o.limit } : {}),
      });
      let items: ProcessInfo[];
      let nextCursor: string | null = null;
      if (o.all) items = (await listing.toArray()).map((p) => p.info);
      else {
        const page = await listing.page();
        items = page.items.map((p) => p.info);
        nextCursor = page.nextCursor;
      }
      if (o.json) {
        printJson({ items, next_cursor: nextCursor });
        return 0;
      }
      if (items.length) process.stdout.write(processRows(items));
      else process.stderr.write('no processes\n');
      if (nextCursor) process.stderr.write('more processes: --all\n');
      return 0;
    }),
  );

  withClientOptions(
    bunker
      .command('attach')
      .description('Attach to a running process: its output, and your input as its stdin; exits with its exit code (Ctrl-] detaches)')
      .argument('<id>', 'bunker id')
      .argument('<exec_id>', 'exec id (from exec --background or ps)')
      .option('--from <seq>', 'replay output from this sequence number (default 1: all that is kept)', positiveInt),
  ).action(
    clientAction(async (id: string, execId: string, o: ClientFlags & { from?: number }, cmd: Command) => {
      if (o.json) refuseJson(cmd, 'attach', `ps ${id} --json`);
      const b = await Bunker.connect(id, await clientFrom(o));
      // Read first: an unknown exec is a clear EXEC_NOT_FOUND, and input is sent only where there is a stdin.
      const target = await b.processes.get(execId);
      const terminal = await target.attach(o.from !== undefined ? { from: o.from } : {});
      return interactive(terminal, target.info.stdin_open, `it runs on: scaibunker bunker attach ${id} ${execId}`);
    }),
  );

  withClientOptions(
    bunker
      .command('kill')
      .description("Send a signal to a process's group (default SIGTERM)")
      .argument('<id>', 'bunker id')
      .argument('<exec_id>', 'exec id')
      .addOption(new Option('--signal <signal>', 'the signal').choices(schemas.SIGNALS).default('SIGTERM')),
  ).action(
    clientAction(async (id: string, execId: string, o: ClientFlags & { signal: ProcessSignal }) => {
      const b = await Bunker.connect(id, await clientFrom(o));
      await b.processes.signal(execId, o.signal);
      if (o.json) printJson({ exec_id: execId, signal: o.signal });
      else process.stderr.write(`sent ${o.signal} to ${execId}\n`);
      return 0;
    }),
  );

  withClientOptions(
    bunker
      .command('shell')
      .description('Interactive login shell (or --command) in a terminal; exits with its exit code (Ctrl-] detaches; --exec-id reattaches)')
      .argument('<id>', 'bunker id')
      .option('--command <cmd>', 'run this (by /bin/sh -c) instead of a login shell')
      .option('--exec-id <exec_id>', 'reattach to this shell'),
  ).action(
    clientAction(async (id: string, o: ClientFlags & { command?: string; execId?: string }, cmd: Command) => {
      if (o.json) refuseJson(cmd, 'shell', `exec ${id} --json -- …`);
      const b = await Bunker.connect(id, await clientFrom(o));
      const terminal = await b.shell({
        ...localSize(),
        ...(o.command !== undefined ? { command: o.command } : {}),
        ...(o.execId !== undefined ? { execId: o.execId } : {}),
      });
      process.stderr.write(`shell ${terminal.execId}\r\n`);
      return interactive(terminal, true, `reattach within 60 s: scaibunker bunker shell ${id} --exec-id ${terminal.execId}`);
    }),
  );

  withClientOptions(
    bunker
      .command('watch')
      .description('Print changes under a bunker directory as they happen, one per line (--json: a JSON object per line)')
      .argument('<id>', 'bunker id')
      .argument('<path>', 'directory inside the bunker')
      .option('-r, --recursive', 'also changes in subdirectories'),
  ).action(
    clientAction(async (id: string, path: string, o: ClientFlags & { recursive?: boolean }) => {
      const b = await Bunker.connect(id, await clientFrom(o));
      for await (const change of b.files.watch(path, o.recursive ? { recursive: true } : {})) {
        await writeStdout(
          o.json ? `${JSON.stringify(change)}\n` : `${change.type}\t${change.path}${change.is_dir && change.path !== '/' ? '/' : ''}\n`,
        );
      }
      return 0;
    }),
  );
}
