/**
 * A minimal QMP (QEMU Machine Protocol) client over QEMU's `-qmp unix:…,server=on,wait=off`
 * socket: capabilities negotiation, commands with ids, and events. QEMU closes the socket when
 * it exits, so `closed` doubles as "the VM process is gone" for a VM this worker did not spawn
 * (after a worker restart QEMU is not our child and cannot be waited for).
 */
import { once } from 'node:events';
import net from 'node:net';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export class QmpError extends Error {
  constructor(
    message: string,
    readonly errorClass?: string,
  ) {
    super(message);
    this.name = 'QmpError';
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

type EventWaiter = { match(e: QmpEvent): boolean; resolve(e: QmpEvent): void };

export class Qmp {
  readonly closed: Promise<void>;
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly waiters = new Set<EventWaiter>();
  private greeted?: () => void;
  private isClosed = false;

  private constructor(private readonly sock: net.Socket) {
    this.closed = new Promise((res) => sock.once('close', () => res()));
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', () => {}); // surfaced through 'close' and the pending rejections
    sock.once('close', () => {
      this.isClosed = true;
      for (const p of this.pending.values()) p.reject(new QmpError('QMP connection closed (QEMU exited?)'));
      this.pending.clear();
    });
  }

  /**
   * Connects and negotiates capabilities. The socket file appears slightly before QEMU listens
   * (no event exists for that), so ENOENT / ECONNREFUSED are retried until the deadline or
   * until `abort` rejects (QEMU exited).
   */
  static async connect(path: string, opts: { timeoutMs: number; abort?: Promise<never> }): Promise<Qmp> {
    const deadline = Date.now() + opts.timeoutMs;
    for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
      const s = net.connect(path);
      try {
        await Promise.race([once(s, 'connect'), ...(opts.abort ? [opts.abort] : [])]);
      } catch (err) {
        s.destroy();
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, delay));
        continue;
      }
      const q = new Qmp(s);
      const greeting = new Promise<void>((res) => {
        q.greeted = res;
      });
      try {
        await Promise.race([greeting, q.closed.then(() => Promise.reject(new QmpError('QMP closed before its greeting')))]);
        await q.execute('qmp_capabilities');
        return q;
      } catch (err) {
        q.close();
        throw err;
      }
    }
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.isClosed) return Promise.reject(new QmpError(`QMP ${command}: connection closed (QEMU exited?)`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  /**
   * Resolves with the first event named `name` (matching `match`) that arrives after this
   * call; rejects when the connection closes first. Register before triggering the event.
   */
  waitEvent(name: string, match: (data: Record<string, unknown>) => boolean = () => true): Promise<QmpEvent> {
    return new Promise<QmpEvent>((resolve, reject) => {
      const waiter: EventWaiter = {
        match: (e) => e.event === name && match(e.data ?? {}),
        resolve: (e) => {
          this.waiters.delete(waiter);
          resolve(e);
        },
      };
      this.waiters.add(waiter);
      this.closed.then(() => {
        if (this.waiters.delete(waiter)) reject(new QmpError(`QMP closed while waiting for ${name}`));
      });
    });
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(d: string): void {
    this.buf += d;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue; // QMP speaks JSON only; ignore noise rather than wedge
      }
      if ('QMP' in msg) this.greeted?.();
      else if ('event' in msg) {
        const e = msg as unknown as QmpEvent;
        for (const w of [...this.waiters]) if (w.match(e)) w.resolve(e);
      } else if (typeof msg.id === 'number') {
        const p = this.pending.get(msg.id);
        if (!p) continue;
        this.pending.delete(msg.id);
        if ('error' in msg) {
          const e = msg.error as { class?: string; desc?: string };
          p.reject(new QmpError(e.desc ?? 'QMP error', e.class));
        } else p.resolve(msg.return);
      }
    }
  }
}
