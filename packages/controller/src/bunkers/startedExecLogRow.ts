import type { ExecLogRow } from '../store/schema.js';

/** The exec log keeps this much of a command. */
const COMMAND_CHARS = 8192;

/** An exec's log row as it is written when the exec starts (running, nothing known of its end yet). */
export function startedExecLogRow(exec: {
  id: string;
  bunker: { id: string; tenant_id: string };
  caller: string;
  command: string;
  background?: { tag: string | null; pty: boolean };
}): ExecLogRow {
  return {
    id: exec.id,
    bunker_id: exec.bunker.id,
    tenant_id: exec.bunker.tenant_id,
    caller: exec.caller,
    command: exec.command.slice(0, COMMAND_CHARS),
    exit_code: null,
    signal: null,
    timed_out: 0,
    duration_ms: null,
    stdout_preview: '',
    stderr_preview: '',
    truncated: 0,
    full_output_ref: null,
    started_at: new Date().toISOString(),
    finished_at: null,
    output_store: 'inline',
    output_bytes: 0,
    state: 'running',
    tag: exec.background?.tag ?? null,
    background: exec.background ? 1 : 0,
    pid: null,
    end_reason: null,
    pty: exec.background?.pty ? 1 : 0,
  };
}
