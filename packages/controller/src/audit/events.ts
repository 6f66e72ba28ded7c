import type { schemas } from '@scaibunker/core';
import type { AuditEntry } from '../tenants/audit.js';

/** An exec's command is kept in full in its exec-log row; the audit event keeps its start. */
export const AUDIT_COMMAND_CHARS = 1024;

/** `exec.run`: the exec, in its bunker; the command as given (string or JSON argv), cut at 1 KiB. */
export function execEvent(bunkerId: string, execId: string, body: schemas.ExecBody): AuditEntry {
  const command = typeof body.command === 'string' ? body.command : JSON.stringify(body.command);
  const background = body.background;
  return {
    action: 'exec.run',
    target: { type: 'exec', id: execId },
    bunkerId,
    details: {
      exec_id: execId,
      command: command.slice(0, AUDIT_COMMAND_CHARS),
      ...(command.length > AUDIT_COMMAND_CHARS ? { command_truncated: true } : {}),
      ...(typeof background === 'boolean' ? { background } : {}),
      ...(body.tag ? { tag: body.tag } : {}),
      ...(body.user ? { user: body.user } : {}),
    },
  };
}

/** A file operation on `path` in a bunker (`file.write`, `file.delete`, `file.mkdir`). */
export function fileEvent(
  bunkerId: string,
  action: `file.${'write' | 'delete' | 'mkdir'}`,
  details: { path: string; [field: string]: unknown },
): AuditEntry {
  return { action, target: { type: 'bunker', id: bunkerId }, bunkerId, details };
}

/** `shell.open` / `shell.close`: a terminal session (a WebSocket) on a shell exec. */
export function shellEvent(bunkerId: string, execId: string, action: 'shell.open' | 'shell.close', details: object = {}): AuditEntry {
  return { action, target: { type: 'exec', id: execId }, bunkerId, details: { exec_id: execId, ...details } };
}
