/**
 * The worker's image cache: `<imageDir>/<sha256>.ext4`, complete and verified images only.
 *
 * A missing image is fetched from a peer worker of the same availability group, else from
 * storage, into `<imageDir>/.partial/<sha256>.<random>`: its sha256 is computed while it
 * streams to disk, then the file is fsynced and renamed into place (and the directory fsynced),
 * so a `<sha256>.ext4` is never partial and never of the wrong content. Bytes only stream —
 * images are up to GiBs. Concurrent ensure() calls of one image share one download.
 *
 * Failures: a peer that fails (HTTP error, stall, cut connection, wrong digest) is skipped for
 * the next peer, then storage. Storage failing is IMAGE_FETCH_FAILED; no peer and nothing in
 * storage is IMAGE_NOT_CACHED.
 *
 * Resuming: an image's bytes are the same wherever they come from, so a download cut short
 * (a cut connection, a stall) keeps what it received and the next source continues it from
 * there with a `Range` request: the next peer (a peer answering whole is skipped, the bytes
 * kept), then storage (again after each of its own cuts that brought bytes, up to
 * MAX_STORAGE_ATTEMPTS). Wrong bytes are found only at the end: then the partial file is
 * dropped and, if it was stitched from several attempts, storage is asked once more from the
 * start.
 */

import { createHash, type Hash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, type FileHandle, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { SHA256_HEX, SHA256_HEX_BODY } from '@scaibunker/core';
import type { PooledHttpBody } from '../http/PooledHttpBody.js';
import { type CachedImage, WorkerError } from '../WorkerApi.js';
import { type ImageOrigins, type ImagePeer, type PeerImageOpener, RangeNotHonored } from './ImageOrigins.js';
import { PeerImageClient } from './PeerImageClient.js';

export type ImageSource = 'cache' | 'peer' | 'proxy';

export interface EnsureResult {
  path: string;
  source: ImageSource;
  /** The image's size (for a fetch, the bytes fetched from `source`). */
  bytes: number;
}

export interface EnsureProgress {
  source: 'peer' | 'proxy';
  /** Bytes of the image received so far (a download continued from a cut counts what it kept). */
  bytes: number;
}

export interface EnsureOptions {
  /** Gives up waiting; the shared download stops once every caller waiting for it gave up. */
  signal?: AbortSignal;
  onProgress?(p: EnsureProgress): void;
}

export interface ImageCacheOptions {
  imageDir: string;
  origins: ImageOrigins;
  /** Opens a peer's copy of an image. Default: PeerImageClient with `token`; neither: peers are not asked. */
  peers?: PeerImageOpener;
  /** The worker token, presented to peers. */
  token?: string;
  /** This worker's own URL: a peer listed under it is skipped. */
  selfUrl?: string;
  /** A source that sends no bytes for this long is abandoned (default 30000 ms). */
  stallTimeoutMs?: number | undefined;
  logger?: { info(message: string): void; warn(message: string): void };
}

interface Flight {
  promise: Promise<EnsureResult>;
  abort: AbortController;
  waiters: number;
  listeners: Set<(p: EnsureProgress) => void>;
}

const IMAGE_FILE = new RegExp(`^(${SHA256_HEX_BODY})\\.ext4$`);
const PARTIAL_DIR = '.partial';
/** Bytes per disk read or write of an image: large chunks keep a GiB transfer from being syscall-bound. */
const IO_CHUNK = 1024 * 1024;
/** Storage requests for one download at most: the first, and continuations after cuts that each brought bytes. */
const MAX_STORAGE_ATTEMPTS = 5;

/** The bytes received hash to something else: nothing received so far can be trusted. */
class DigestMismatch extends Error {}

export class ImageCache {
  private readonly imageDir: string;
  private readonly partialDir: string;
  private readonly origins: ImageOrigins;
  private readonly peerOpener: PeerImageOpener | undefined;
  private readonly selfUrl: string;
  private readonly stallTimeoutMs: number;
  private readonly logger: { info(message: string): void; warn(message: string): void };
  private readonly flights = new Map<string, Flight>();
  private starting: Promise<void> | null = null;

  constructor(opts: ImageCacheOptions) {
    this.imageDir = opts.imageDir;
    this.partialDir = join(opts.imageDir, PARTIAL_DIR);
    this.origins = opts.origins;
    this.peerOpener = opts.peers ?? (opts.token ? new PeerImageClient(opts.token) : undefined);
    this.selfUrl = normalizeUrl(opts.selfUrl ?? '');
    this.stallTimeoutMs = opts.stallTimeoutMs ?? 30_000;
    this.logger = opts.logger ?? { info: () => {}, warn: () => {} };
  }

  /**
   * Makes the directories and removes leftover partial downloads (of a crash or a restart:
   * never complete, never used). Idempotent; ensure() calls it. Run one cache per imageDir.
   */
  start(): Promise<void> {
    if (!this.starting) {
      const run = this.cleanPartials();
      this.starting = run;
      run.catch(() => {
        if (this.starting === run) this.starting = null; // the next call tries again
      });
    }
    return this.starting;
  }

  /** Where the image is (or would be) cached. */
  path(sha256: string): string {
    return join(this.imageDir, `${checkSha(sha256)}.ext4`);
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.sizeOf(sha256)) !== undefined;
  }

  /** The sha256 of every complete cached image, sorted. */
  async list(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.imageDir);
    } catch {
      return [];
    }
    const out: string[] = [];
    for (const sha of names.flatMap((n) => IMAGE_FILE.exec(n)?.[1] ?? [])) {
      // The same test as has(): a regular file (a symlink to one counts).
      if ((await this.sizeOf(sha).catch(() => undefined)) !== undefined) out.push(sha);
    }
    return out.sort();
  }

  /** The cached image, fetching it first when it is missing (see the file comment). */
  async ensure(sha256: string, opts: EnsureOptions = {}): Promise<EnsureResult> {
    checkSha(sha256);
    opts.signal?.throwIfAborted();
    await this.start();
    const bytes = await this.sizeOf(sha256);
    if (bytes !== undefined) return { path: this.path(sha256), source: 'cache', bytes };
    return this.join(this.flights.get(sha256) ?? this.startFlight(sha256), sha256, opts);
  }

  /** Removes a cached image; absent is not an error. Bunkers already running on it keep their open file. */
  async remove(sha256: string): Promise<void> {
    await rm(this.path(sha256), { force: true });
  }

  /**
   * Opens a cached image for a peer, from byte `from` on when that is inside the image (else
   * whole: the answer's `from` says which). The file is opened before its size is read, so an
   * image removed meanwhile is still served whole; a missing one is IMAGE_NOT_CACHED.
   */
  async openCached(sha256: string, from = 0): Promise<CachedImage> {
    let file: FileHandle;
    try {
      file = await open(this.path(sha256), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new WorkerError('IMAGE_NOT_CACHED', `image ${sha256} is not cached here`);
      throw err;
    }
    try {
      const info = await file.stat();
      if (!info.isFile()) throw new WorkerError('IMAGE_NOT_CACHED', `image ${sha256} is not a regular file here`);
      if (from > 0 && from < info.size)
        return { stream: file.createReadStream({ highWaterMark: IO_CHUNK, start: from }), bytes: info.size, from };
      return { stream: file.createReadStream({ highWaterMark: IO_CHUNK }), bytes: info.size };
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  // ---------------------------------------------------------------- internals

  private async cleanPartials(): Promise<void> {
    await mkdir(this.partialDir, { recursive: true });
    for (const name of await readdir(this.partialDir)) {
      await rm(join(this.partialDir, name), { recursive: true, force: true });
    }
  }

  private async sizeOf(sha256: string): Promise<number | undefined> {
    try {
      const info = await stat(this.path(sha256));
      return info.isFile() ? info.size : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private startFlight(sha256: string): Flight {
    const flight: Flight = { promise: Promise.resolve() as never, abort: new AbortController(), waiters: 0, listeners: new Set() };
    const emit = (p: EnsureProgress) => {
      for (const listener of flight.listeners) {
        try {
          listener(p);
        } catch {
          /* a caller's progress callback never breaks the download */
        }
      }
    };
    flight.promise = this.download(sha256, flight.abort.signal, emit).finally(() => {
      if (this.flights.get(sha256) === flight) this.flights.delete(sha256);
    });
    flight.promise.catch(() => {}); // the waiters see the rejection; there may be none left
    this.flights.set(sha256, flight);
    return flight;
  }

  private async join(flight: Flight, sha256: string, opts: EnsureOptions): Promise<EnsureResult> {
    flight.waiters++;
    const { signal, onProgress } = opts;
    if (onProgress) flight.listeners.add(onProgress);
    let onAbort: (() => void) | undefined;
    try {
      if (!signal) return await flight.promise;
      const gaveUp = new Promise<never>((_, reject) => {
        onAbort = () => reject(signal.reason);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      return await Promise.race([flight.promise, gaveUp]);
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      if (onProgress) flight.listeners.delete(onProgress);
      // The last caller gave up before the download ended: nobody wants it any more.
      if (--flight.waiters === 0 && this.flights.get(sha256) === flight) {
        this.flights.delete(sha256);
        flight.abort.abort(signal?.reason ?? new Error('every caller gave up'));
      }
    }
  }

  private async download(sha256: string, signal: AbortSignal, emit: (p: EnsureProgress) => void): Promise<EnsureResult> {
    const path = this.path(sha256);
    // Another flight may have finished between the caller's look and this one starting.
    const have = await this.sizeOf(sha256);
    if (have !== undefined) return { path, source: 'cache', bytes: have };

    // One partial file for the whole download, whichever sources fill it.
    const partial = join(this.partialDir, `${sha256}.${randomBytes(8).toString('hex')}`);
    try {
      const failures: string[] = [];
      for (const peer of await this.peersOf(sha256)) {
        const opener = this.peerOpener as PeerImageOpener; // peersOf lists none without one
        try {
          // From where an earlier peer was cut, if one was.
          const bytes = await this.fetchInto(
            sha256,
            partial,
            (s, at) => opener.open(peer, sha256, s, at),
            signal,
            (n) => emit({ source: 'peer', bytes: n }),
          );
          this.logger.info(`image ${sha256}: ${bytes} bytes from peer ${peer.workerId}`);
          return { path, source: 'peer', bytes };
        } catch (err) {
          if (signal.aborted) throw signal.reason;
          if (err instanceof DigestMismatch) await rm(partial, { force: true });
          failures.push(`peer ${peer.workerId} (${peer.url}): ${messageOf(err)}`);
          this.logger.warn(`image ${sha256}: peer ${peer.workerId} failed, trying the next source: ${messageOf(err)}`);
        }
      }

      try {
        const bytes = await this.fetchFromStorage(sha256, partial, signal, emit);
        this.logger.info(`image ${sha256}: ${bytes} bytes from storage`);
        return { path, source: 'proxy', bytes };
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        const peersSaid = failures.length ? `; peers: ${failures.join('; ')}` : '';
        if (err instanceof WorkerError && err.code === 'IMAGE_NOT_CACHED') {
          if (!failures.length) throw new WorkerError('IMAGE_NOT_CACHED', `image ${sha256} is on no peer and not in storage`);
          throw new WorkerError('IMAGE_FETCH_FAILED', `image ${sha256} is not in storage and no peer delivered it${peersSaid}`);
        }
        throw new WorkerError('IMAGE_FETCH_FAILED', `fetching image ${sha256} from storage: ${messageOf(err)}${peersSaid}`);
      }
    } finally {
      await rm(partial, { force: true }).catch(() => {});
    }
  }

  /**
   * Storage fills the partial file from where it is: again after a cut that brought bytes (a
   * `Range` request for the rest), from the start once if storage ignores ranges or if bytes
   * stitched from several attempts turn out wrong.
   */
  private async fetchFromStorage(sha256: string, partial: string, signal: AbortSignal, emit: (p: EnsureProgress) => void): Promise<number> {
    let restarted = false;
    for (let attempt = 1; ; attempt++) {
      const from = await partialSize(partial);
      try {
        return await this.fetchInto(
          sha256,
          partial,
          (_s, at) => this.origins.openFromStorage(sha256, at),
          signal,
          (n) => emit({ source: 'proxy', bytes: n }),
        );
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        const startOver = (err instanceof DigestMismatch && from > 0) || err instanceof RangeNotHonored;
        if (startOver && !restarted) {
          restarted = true;
          await rm(partial, { force: true });
          this.logger.warn(`image ${sha256}: starting again from byte 0: ${messageOf(err)}`);
          continue;
        }
        const got = await partialSize(partial);
        if (err instanceof DigestMismatch || err instanceof WorkerError || got <= from || attempt >= MAX_STORAGE_ATTEMPTS) throw err;
        this.logger.warn(`image ${sha256}: storage stopped at byte ${got}, continuing from there: ${messageOf(err)}`);
      }
    }
  }

  /** Peers worth asking: not this worker, each URL once. A failed lookup means none (storage remains). */
  private async peersOf(sha256: string): Promise<ImagePeer[]> {
    if (!this.peerOpener) return [];
    let listed: ImagePeer[];
    try {
      listed = await this.origins.peers(sha256);
    } catch (err) {
      this.logger.warn(`image ${sha256}: could not list peers, using storage: ${messageOf(err)}`);
      return [];
    }
    const seen = new Set<string>();
    return listed.filter((p) => {
      const url = normalizeUrl(p.url);
      if (!url || url === this.selfUrl || seen.has(url)) return false;
      seen.add(url);
      return true;
    });
  }

  /**
   * Streams one source onto the end of the partial file (from its current size: `openSource`
   * gets that offset), verifying the digest of the whole file on the way, and moves it into
   * place. Resolves with the image's size; rejects on any failure (DigestMismatch for wrong
   * bytes), on `outer` aborting, or when the source sends nothing for `stallTimeoutMs`, leaving
   * the bytes written so far in the partial file for the next attempt.
   */
  private async fetchInto(
    sha256: string,
    partial: string,
    openSource: (signal: AbortSignal, from: number) => Promise<Readable>,
    outer: AbortSignal,
    onBytes: (bytes: number) => void,
  ): Promise<number> {
    const attempt = new AbortController();
    const onOuter = () => attempt.abort(outer.reason);
    outer.addEventListener('abort', onOuter, { once: true });
    if (outer.aborted) onOuter();
    // One timer per download, not one per chunk: a GiB arrives in ~16k chunks.
    const stallMs = this.stallTimeoutMs;
    let lastBytesAt = Date.now();
    const arm = () => {
      lastBytesAt = Date.now();
    };
    const timer: NodeJS.Timeout = setInterval(
      () => {
        if (Date.now() - lastBytesAt >= stallMs) attempt.abort(new Error(`stalled: no bytes for ${stallMs} ms`));
      },
      Math.max(10, Math.min(1000, Math.floor(stallMs / 4))),
    );
    try {
      // What an earlier attempt left is hashed again from disk: only bytes on disk count.
      const { hash, bytes: from } = await hashOf(partial);
      let bytes = from;
      arm();
      const source = await untilAborted(openSource(attempt.signal, from), attempt.signal);
      // The stream is read here rather than piped: when the source fails, what was received is
      // still written and the file closed before the error goes up, so a continuation starts
      // after every byte received (a pipeline would drop what the file had not written yet).
      const onAbort = () => source.destroy(attempt.signal.reason);
      attempt.signal.addEventListener('abort', onAbort, { once: true });
      const file = createWriteStream(partial, { flags: 'a', mode: 0o600, highWaterMark: IO_CHUNK });
      const fileDone = finished(file);
      fileDone.catch(() => {}); // awaited below; a write error must not go unhandled meanwhile
      let failure: unknown;
      try {
        if (attempt.signal.aborted) throw attempt.signal.reason;
        // A pooled source's chunks go back to it once on disk: its blocks are read into again.
        const release = (source as Partial<PooledHttpBody>).release?.bind(source);
        for await (const chunk of source) {
          arm();
          hash.update(chunk as Buffer);
          bytes += (chunk as Buffer).length;
          onBytes(bytes);
          const written = file.write(chunk, release && (() => release(chunk as Buffer)));
          if (!written) await once(file, 'drain', { signal: attempt.signal });
        }
      } catch (err) {
        failure = attempt.signal.aborted ? attempt.signal.reason : err;
        source.destroy();
      } finally {
        attempt.signal.removeEventListener('abort', onAbort);
        file.end();
      }
      await fileDone;
      if (failure !== undefined) {
        if (outer.aborted || !(failure instanceof Error)) throw failure;
        if (failure instanceof RangeNotHonored || failure instanceof WorkerError) throw failure;
        throw new Error(`${failure.message} (after ${bytes} bytes${from > 0 ? `, continuing from byte ${from}` : ''})`, { cause: failure });
      }
      clearInterval(timer);
      const digest = hash.digest('hex');
      if (digest !== sha256) throw new DigestMismatch(`sha256 mismatch: the ${bytes} bytes received hash to ${digest}`);
      // Read-only, like the images setup bakes: nothing may write to a cached image.
      await chmod(partial, 0o444);
      await fsync(partial);
      await rename(partial, this.path(sha256));
      await fsync(this.imageDir);
      return bytes;
    } finally {
      clearInterval(timer);
      outer.removeEventListener('abort', onOuter);
    }
  }
}

// ---------------------------------------------------------------- helpers

function checkSha(sha256: string): string {
  if (!SHA256_HEX.test(sha256)) throw new WorkerError('IMAGE_NOT_CACHED', `not an image sha256: ${sha256}`);
  return sha256;
}

function normalizeUrl(url: string): string {
  return url.trim().replace(/\/+$/, '').toLowerCase();
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `p`, unless `signal` aborts first; a stream that arrives too late is destroyed. */
function untilAborted(p: Promise<Readable>, signal: AbortSignal): Promise<Readable> {
  return new Promise<Readable>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (stream) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) stream.destroy();
        else resolve(stream);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Bytes in a partial download so far (0: none yet). */
async function partialSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

/** A sha256 fed with the file's bytes so far (none when it does not exist yet), and their count. */
async function hashOf(path: string): Promise<{ hash: Hash; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  if ((await partialSize(path)) === 0) return { hash, bytes };
  for await (const chunk of createReadStream(path, { highWaterMark: IO_CHUNK })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { hash, bytes };
}

/** Flushes a written file (or, for a directory, its entries: a rename in it) to disk. */
async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
