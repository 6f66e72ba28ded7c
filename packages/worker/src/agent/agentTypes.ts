/**
 * The agent client's request and result shapes (PROTOCOL.md §3): what callers of
 * AgentClient pass and get back, apart from the wire format.
 */
import type { ExecHandlers, ExecOutcome as ExecResult, FileStatInfo as FileStat } from '@scaibunker/core';

/** A file's stat, an exec's outcome and its output handlers: the worker contract's (core/src/worker). */
export type { ExecHandlers, ExecResult, FileStat };

export interface HealthInfo {
  version: string;
  uptime_ms: number;
  pid: number;
  /** Protocol version spoken by the agent. */
  protocol?: number;
  /** Agent resident set size, when /proc is available inside the bunker. */
  rss_bytes?: number;
}

/**
 * The agent's HELLO frame, the first frame on every connection (PROTOCOL.md §5.1). On a
 * virtio-serial port it means the agent has (re)opened the port: only bytes sent after it
 * are guaranteed to reach the agent.
 */
export interface AgentHello {
  /** Protocol version spoken by the agent. */
  protocol: number;
  /** Agent version, e.g. "0.1.0". */
  version: string;
  /** The agent's pid in its own pid namespace (1 when it is the bunker's init). */
  pid: number;
  /** The kernel's boot id (/proc/sys/kernel/random/boot_id); '' when unavailable. */
  bootId: string;
}

export interface ConnectOptions {
  /** Upper bound for the whole connect(), including the wait for HELLO. Default 10 s. */
  timeoutMs?: number;
  /**
   * Resolve only once the agent's HELLO arrived; if it does not within timeoutMs, the
   * connection is closed and connect() rejects with AgentError 'TIMEOUT'. Default false.
   */
  awaitHello?: boolean;
  /** Stops retrying (rejects with CONNECT_FAILED) once aborted, e.g. when the VM it waits for is gone. */
  signal?: AbortSignal | undefined;
}

/** `identity` request: every member optional, at least one required (PROTOCOL.md §3.4). */
export interface IdentityRequest {
  /** 1–64 characters of A–Z a–z 0–9 '-' '.'. */
  hostname?: string;
  /** 32 lowercase hex digits, written to /etc/machine-id. */
  machineId?: string;
  /** 1–512 bytes fed to the kernel's entropy pool (credited in full), then the CRNG is reseeded. */
  entropy?: Buffer;
  /** CLOCK_REALTIME to set, in nanoseconds since the epoch. */
  timeUnixNs?: bigint;
}

export interface IdentityResult {
  /** The hostname that was set, or null when not requested. */
  hostname: string | null;
  /** The machine id that was written, or null when not requested. */
  machineId: string | null;
  /** Bytes of entropy added (0 when not requested). */
  entropyBytes: number;
  /** Whether the clock was set. */
  clockSet: boolean;
}

/** Members left undefined are absent (the request is JSON). */
export interface ExecRequest {
  argv: string[];
  env?: Record<string, string> | undefined;
  cwd?: string | undefined;
  user?: string | undefined;
  stdin?: Buffer | string | AsyncIterable<Buffer> | undefined;
  timeoutMs?: number | undefined;
}

/**
 * A process started with spawn(): the lower-level form of exec() for background processes
 * and interactive terminals.
 */
export interface AgentSpawnRequest {
  argv: string[];
  env?: Record<string, string> | undefined;
  cwd?: string | undefined;
  user?: string | undefined;
  timeoutMs?: number | undefined;
  /**
   * 'pipe': stdin is written later with write() / closeStdin(); a Buffer, string or
   * iterable: fed, then EOF; absent: no stdin (reads EOF at once). With `pty`, stdin is
   * always the terminal: absent means write()/closeStdin() may be used, as with 'pipe'.
   */
  stdin?: 'pipe' | Buffer | string | AsyncIterable<Buffer> | undefined;
  /** Run in a pseudo-terminal of this size (1–1000 each); output arrives on onStdout only. */
  pty?: { cols: number; rows: number } | undefined;
}

export interface AgentProcess {
  /**
   * Resolves with the pid once the agent reports the fork (STARTED); rejects if the exec
   * failed before starting (INVALID_ARGUMENT, NOT_FOUND cwd, CHANNEL_CLOSED, …). With an
   * agent that predates STARTED it resolves with the RESULT's pid when the process ended.
   */
  readonly started: Promise<{ pid: number }>;
  /** The exec's outcome (as exec() returns it). */
  readonly result: Promise<ExecResult>;
  /**
   * Writes to stdin ('pipe' or pty) within the stream's credit; resolves when queued to
   * the socket. A no-op once the process finished; rejects (INVALID_ARGUMENT) after
   * closeStdin() or when stdin is not writable ('pipe' not requested).
   */
  write(data: Buffer | string): Promise<void>;
  /** EOF on stdin, after every pending write (pty: the terminal's EOF character, ^D, once). */
  closeStdin(): void;
  /** Sends a signal to the process group (pty: the terminal's foreground process group). */
  signal(sig: string): void;
  /** Sets the terminal's size (pty only; the agent ignores it otherwise). */
  resize(cols: number, rows: number): void;
  /** SIGKILL to the process group (CANCEL); `result` still resolves (signal 'SIGKILL'). */
  kill(): void;
}

/** One change seen by watch(). */
export interface WatchEvent {
  type: 'create' | 'write' | 'remove' | 'rename' | 'chmod' | 'overflow';
  path: string;
  is_dir: boolean;
}

export interface WatchHandle {
  /**
   * Resolves when the watch ended normally (stop(), or the watched directory was removed
   * or moved away); rejects with AgentError (NOT_FOUND, NOT_A_DIRECTORY, TOO_MANY_ENTRIES,
   * CHANNEL_CLOSED, …) or with the error onEvent threw.
   */
  done: Promise<void>;
  /** Ends the watch; no onEvent call starts after it. */
  stop(): void;
}
