import { ApiError, schemas } from '@scaibunker/core';
import type { WebSocket } from 'ws';
import type { Principal } from '../../auth/Principal.js';
import { SocketInbox } from '../../shell/SocketInbox.js';
import { type RouteDef, rawUpload, route, upgradeRequired } from '../Route.js';
import { SseStream } from '../SseStream.js';
import { API, type Services } from './Services.js';

const EXEC = `${API}/bunkers/:id/execs/:exec_id`;
const EXEC_ERRORS = ['BUNKER_NOT_FOUND', 'EXEC_NOT_FOUND'] as const;
const STEER_ERRORS = [...EXEC_ERRORS, 'EXEC_CONFLICT', 'BUNKER_NOT_RUNNING', 'WORKER_UNAVAILABLE'] as const;

/** Background processes, their output and input, terminals and shells. */
export function processRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/execs`,
      auth: 'scaibunker:read',
      operationId: 'listExecs',
      summary: "A bunker's execs, running and recent, newest first (`state`, `tag` filters)",
      tags: ['processes'],
      params: schemas.BunkerIdParams,
      querystring: schemas.ListProcessesQuery,
      response: { status: 200, schema: schemas.ProcessPage },
      errors: ['BUNKER_NOT_FOUND'],
      handler: ({ params, query, principal }) => s.processes.list(principal, params.id, query),
    }),
    route({
      method: 'GET',
      url: EXEC,
      auth: 'scaibunker:read',
      operationId: 'getExec',
      summary: 'One exec: its state, exit code or signal, times',
      tags: ['processes'],
      params: schemas.ExecIdParams,
      response: { status: 200, schema: schemas.Process },
      errors: [...EXEC_ERRORS],
      handler: ({ params, principal }) => s.processes.get(principal, params.id, params.exec_id),
    }),
    route({
      method: 'GET',
      url: `${EXEC}/events`,
      auth: 'scaibunker:read',
      operationId: 'execEvents',
      summary: "An exec's output as Server-Sent Events from a sequence number, live until it ends",
      tags: ['processes'],
      params: schemas.ExecIdParams,
      querystring: schemas.ProcessEventsQuery,
      response: { status: 200, sse: ['stdout', 'stderr', 'exit', 'error'] },
      errors: [...EXEC_ERRORS],
      handler: async ({ params, query, principal, req, reply }) => {
        // Resolved before committing to a 200 stream, so an unknown exec stays a 404.
        await s.processes.row(principal, params.id, params.exec_id);
        const lastEventId = Number(req.headers['last-event-id']);
        const from = Number.isInteger(lastEventId) && lastEventId > 0 ? lastEventId + 1 : (query.from ?? 1);
        const sse = new SseStream(req, reply);
        try {
          const ended = await s.processes.events(
            principal,
            params.id,
            params.exec_id,
            from,
            (e) => sse.send(e.stream, { data: e.data.toString('utf8') }, e.seq),
            sse.signal,
          );
          if (ended.state !== 'running') await sse.send('exit', ended);
        } catch (err) {
          const e = err instanceof ApiError ? err : new ApiError('INTERNAL', 'event stream failed');
          await sse.send('error', e.toBody().error);
        }
        sse.end();
        return reply;
      },
    }),
    route({
      method: 'POST',
      url: `${EXEC}/stdin`,
      auth: 'scaibunker:execute',
      operationId: 'writeExecStdin',
      summary: "Write the raw body to a background exec's stdin (started with `stdin: true` or `pty`)",
      tags: ['processes'],
      params: schemas.ExecIdParams,
      rawBody: true,
      response: { status: 200, schema: schemas.StdinResult },
      errors: [...STEER_ERRORS],
      handler: ({ params, principal, req }) =>
        // Only application/octet-stream bodies reach here unparsed; an empty one has none.
        s.processes.writeStdin(principal, params.id, params.exec_id, rawUpload(req)),
    }),
    route({
      method: 'POST',
      url: `${EXEC}/stdin/close`,
      auth: 'scaibunker:execute',
      operationId: 'closeExecStdin',
      summary: "Close a background exec's stdin (a terminal gets end-of-file, ^D)",
      tags: ['processes'],
      params: schemas.ExecIdParams,
      response: { status: 204 },
      errors: [...STEER_ERRORS],
      handler: ({ params, principal }) => s.processes.closeStdin(principal, params.id, params.exec_id),
    }),
    route({
      method: 'POST',
      url: `${EXEC}/signal`,
      auth: 'scaibunker:execute',
      operationId: 'signalExec',
      summary: "Send a signal to a running exec's process group",
      tags: ['processes'],
      params: schemas.ExecIdParams,
      body: schemas.SignalBody,
      response: { status: 204 },
      errors: [...STEER_ERRORS],
      handler: ({ params, body, principal }) => s.processes.signal(principal, params.id, params.exec_id, body.signal),
    }),
    route({
      method: 'POST',
      url: `${EXEC}/resize`,
      auth: 'scaibunker:execute',
      operationId: 'resizeExec',
      summary: "Resize a terminal exec's window (its processes get SIGWINCH)",
      tags: ['processes'],
      params: schemas.ExecIdParams,
      body: schemas.TerminalSize,
      response: { status: 204 },
      errors: [...STEER_ERRORS],
      handler: ({ params, body, principal }) => s.processes.resize(principal, params.id, params.exec_id, body.cols, body.rows),
    }),
    route({
      method: 'GET',
      url: `${EXEC}/attach`,
      auth: 'scaibunker:execute',
      ticket: true,
      operationId: 'attachExec',
      summary: 'WebSocket to a running exec: binary frames are stdin and output, text frames JSON control',
      tags: ['processes'],
      params: schemas.ExecIdParams,
      querystring: schemas.AttachQuery,
      response: { status: 101, websocket: true },
      errors: [...STEER_ERRORS],
      handler: upgradeRequired,
      beforeUpgrade: async ({ params, principal }) => void (await s.processes.open(principal, params.id, params.exec_id)),
      socket: async ({ params, query, principal, socket }) => {
        const inbox = new SocketInbox(socket);
        await onSocket(socket, async () => {
          const handle = await s.processes.open(principal, params.id, params.exec_id);
          await s.terminals.run(socket, inbox, handle, { from: query.from ?? 1, killWhenAbandoned: false });
        });
      },
    }),
    route({
      method: 'POST',
      url: `${API}/bunkers/:id/shell-tickets`,
      auth: 'scaibunker:execute',
      operationId: 'createShellTicket',
      summary: 'A single-use, 30-second ticket for `?ticket=` on the shell and attach WebSockets (browsers)',
      tags: ['processes'],
      params: schemas.BunkerIdParams,
      response: { status: 201, schema: schemas.ShellTicket },
      errors: ['BUNKER_NOT_FOUND'],
      handler: async ({ params, principal }) => {
        await s.bunkers.get(principal, params.id);
        return s.tickets.mint(principal, params.id);
      },
    }),
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/shell`,
      auth: 'scaibunker:execute',
      ticket: true,
      operationId: 'openShell',
      summary: 'WebSocket to a login shell in a terminal (or reattach one by `exec_id`)',
      tags: ['processes'],
      params: schemas.BunkerIdParams,
      querystring: schemas.ShellQuery,
      response: { status: 101, websocket: true },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'EXEC_NOT_FOUND', 'EXEC_CONFLICT', 'WORKER_UNAVAILABLE'],
      handler: upgradeRequired,
      beforeUpgrade: async ({ params, query, principal }) => {
        if (!query.exec_id) return void (await s.bunkers.requireRunning(principal, params.id));
        // A reattach runs nothing new, and resizes only to a whole size.
        if (query.command)
          throw new ApiError('VALIDATION_FAILED', '`command` opens a new shell: not with `exec_id`', { field: 'querystring/command' });
        if ((query.cols === undefined) !== (query.rows === undefined)) {
          throw new ApiError('VALIDATION_FAILED', 'a reattach resizes with both `cols` and `rows`, or neither', {
            field: 'querystring/cols',
          });
        }
        await s.processes.open(principal, params.id, query.exec_id);
      },
      socket: async ({ params, query, principal, socket }) => {
        const inbox = new SocketInbox(socket);
        await onSocket(socket, async () => {
          const opened = query.exec_id ? null : await openShell(s, principal, params.id, query);
          const execId = opened?.exec_id ?? (query.exec_id as string);
          const handle = await s.processes.open(principal, params.id, execId);
          if (handle.row.pty !== 1) throw new ApiError('EXEC_CONFLICT', `exec ${execId} has no terminal`);
          if (!opened && query.cols !== undefined && query.rows !== undefined) await handle.resize(query.cols, query.rows);
          socket.send(JSON.stringify({ type: 'ready', exec_id: execId, pid: opened?.pid ?? handle.row.pid }));
          // A new shell's open is on record from its start; a reattach is a session of its own.
          if (!opened) s.processes.recordShell(principal, params.id, execId, 'shell.open', { reattach: true });
          const ended = await s.terminals.run(socket, inbox, handle, { from: 1, killWhenAbandoned: true });
          s.processes.recordShell(principal, params.id, execId, 'shell.close', {
            state: ended?.state ?? 'running',
            exit_code: ended?.exitCode ?? null,
          });
        });
      },
    }),
  ];
}

function openShell(s: Services, principal: Principal, bunkerId: string, q: { cols?: number; rows?: number; command?: string }) {
  return s.processes.startShell(principal, bunkerId, { cols: q.cols ?? 80, rows: q.rows ?? 24 }, q.command);
}

/** After the upgrade an error can only be a text frame and a close code. */
async function onSocket(socket: WebSocket, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    const e = err instanceof ApiError ? err : new ApiError('INTERNAL', (err as Error).message);
    if (socket.readyState === socket.OPEN) {
      socket.send(JSON.stringify({ type: 'error', ...e.toBody().error }));
      socket.close(1011, e.code);
    }
  }
}
