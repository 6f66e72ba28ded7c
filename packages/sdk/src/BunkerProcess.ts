import type { AttachOptions, BunkerProcesses } from './BunkerProcesses.js';
import type { ProcessEvent, ProcessEventsOptions } from './processEvents.js';
import type { Terminal } from './Terminal.js';
import type { ProcessInfo, ProcessSignal, ProcessState } from './types.js';
import type { UploadData } from './uploadBody.js';

/**
 * One process in a bunker (from `bunker.processes.start`, `get` or `list`). `info` is the API's
 * view as of the last call that returned it; `refresh()` or `wait()` update it.
 */
export class BunkerProcess {
  private data: ProcessInfo;

  constructor(
    info: ProcessInfo,
    private readonly processes: BunkerProcesses,
  ) {
    this.data = info;
  }

  get execId(): string {
    return this.data.exec_id;
  }

  get pid(): number | null {
    return this.data.pid;
  }

  get state(): ProcessState {
    return this.data.state;
  }

  get info(): ProcessInfo {
    return this.data;
  }

  async refresh(): Promise<ProcessInfo> {
    this.data = await this.processes.info(this.execId);
    return this.data;
  }

  /** Output events and then `exit` (see `BunkerProcesses.events`). */
  events(opts: ProcessEventsOptions = {}): AsyncGenerator<ProcessEvent> {
    return this.processes.events(this.execId, opts);
  }

  /** Resolves with the process as it ended (and keeps that as `info`). */
  async wait(opts: { signal?: AbortSignal } = {}): Promise<ProcessInfo> {
    this.data = await this.processes.wait(this.execId, opts);
    return this.data;
  }

  sendStdin(data: UploadData, opts: { signal?: AbortSignal } = {}): Promise<{ bytes: number }> {
    return this.processes.sendStdin(this.execId, data, opts);
  }

  closeStdin(): Promise<void> {
    return this.processes.closeStdin(this.execId);
  }

  signal(signal: ProcessSignal): Promise<void> {
    return this.processes.signal(this.execId, signal);
  }

  resize(cols: number, rows: number): Promise<void> {
    return this.processes.resize(this.execId, cols, rows);
  }

  /** SIGKILL to its process group. */
  kill(): Promise<void> {
    return this.processes.kill(this.execId);
  }

  attach(opts: AttachOptions = {}): Promise<Terminal> {
    return this.processes.attach(this.execId, opts);
  }

  toJSON(): ProcessInfo {
    return this.data;
  }
}
