import type { Readable } from 'node:stream';
import type { FileStatInfo, schemas, WatchEvent } from '@scaibunker/core';
import type { AuditTrail } from '../audit/AuditTrail.js';
import { fileEvent } from '../audit/events.js';
import type { Principal } from '../auth/Principal.js';
import type { ControllerConfig } from '../config.js';
import type { BunkerService } from './BunkerService.js';

export function statToApi(s: FileStatInfo): schemas.FileStat {
  return {
    path: s.path,
    name: s.name,
    type: s.type,
    size: s.size,
    mode: (s.mode & 0o7777).toString(8).padStart(4, '0'),
    mtime: new Date(s.mtime_ms).toISOString(),
    ...(s.link_target !== undefined ? { link_target: s.link_target } : {}),
  };
}

/**
 * Files inside a bunker. Paths are resolved by the agent inside the bunker's own mount
 * namespace, so no path or symlink can reach the host; `..` is refused at the edge.
 */
export class FileService {
  constructor(
    private readonly bunkers: BunkerService,
    private readonly config: ControllerConfig,
    /** Writes, deletes and mkdirs are recorded once done (queued: no extra round trip). */
    private readonly audit?: AuditTrail,
  ) {}

  private async run<T>(
    principal: Principal,
    id: string,
    fn: (w: Awaited<ReturnType<BunkerService['requireRunning']>>['worker']) => Promise<T>,
  ): Promise<T> {
    const { worker } = await this.bunkers.requireRunning(principal, id);
    try {
      return await fn(worker);
    } catch (err) {
      throw this.bunkers.mapWorkerError(err);
    }
  }

  read(principal: Principal, id: string, path: string): Promise<Readable> {
    return this.run(principal, id, (w) => w.readFile(id, path));
  }

  async write(principal: Principal, id: string, path: string, data: Readable, opts: { mode?: number; parents?: boolean }) {
    const r = await this.run(principal, id, (w) => w.writeFile(id, path, data, { ...opts, maxBytes: this.config.uploadCapBytes }));
    this.audit?.record(principal, fileEvent(id, 'file.write', { path, bytes: r.bytes }));
    return r;
  }

  async stat(principal: Principal, id: string, path: string): Promise<schemas.FileStat> {
    return statToApi(await this.run(principal, id, (w) => w.stat(id, path)));
  }

  async list(principal: Principal, id: string, path: string): Promise<schemas.FileStat[]> {
    return (await this.run(principal, id, (w) => w.list(id, path))).map(statToApi);
  }

  async mkdir(principal: Principal, id: string, path: string, parents: boolean) {
    const r = await this.run(principal, id, (w) => w.mkdir(id, path, { parents }));
    this.audit?.record(principal, fileEvent(id, 'file.mkdir', { path }));
    return r;
  }

  /** Streams changes under `path` until `signal` aborts; an open watch counts as activity (the bunker is in use). */
  async watch(
    principal: Principal,
    id: string,
    path: string,
    recursive: boolean,
    onChange: (e: WatchEvent) => void | Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const active = setInterval(() => this.bunkers.touch(id), 30_000);
    try {
      await this.run(principal, id, (w) => w.watchFiles(id, path, { recursive }, { onEvent: onChange, signal }));
    } finally {
      clearInterval(active);
    }
  }

  async remove(principal: Principal, id: string, path: string, recursive: boolean) {
    const r = await this.run(principal, id, (w) => w.remove(id, path, { recursive }));
    this.audit?.record(principal, fileEvent(id, 'file.delete', { path, recursive }));
    return r;
  }
}
