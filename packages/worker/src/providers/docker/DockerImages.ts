import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HostMounts } from '../container/HostMounts.js';
import { KeyedLock } from '../host/KeyedLock.js';
import { ProviderError } from '../Provider.js';
import { type DockerEngine, qs } from './DockerEngine.js';

export const IMAGE_REPO = 'scaibunker/img';
export const IMAGE_LABEL = 'scaibunker.image';

/** The Docker image reference of one of our images: `scaibunker/img:<first 16 hex of its sha256>`. */
export function imageRef(sha: string): string {
  return `${IMAGE_REPO}:${sha.slice(0, 16)}`;
}

/**
 * Our ext4 images as Docker images, imported once per sha256: the ext4 file is loop-mounted
 * read-only, tarred (GNU tar: numeric owners, file capabilities kept) straight into
 * `POST /images/create?fromSrc=-` and unmounted again. The image carries the full sha256 as a
 * label, so a tag prefix collision is noticed instead of running the wrong image. Imported
 * images stay in the daemon (like the container provider's idle image mounts).
 */
export class DockerImages {
  private readonly lock = new KeyedLock();
  private readonly known = new Set<string>();

  constructor(
    private readonly engine: DockerEngine,
    private readonly mounts: HostMounts,
    private readonly tmpDir: string,
    private readonly tarBin: () => Promise<string>,
  ) {}

  /** Whether the daemon has the image (right sha). */
  async has(sha: string): Promise<boolean> {
    const r = await this.engine.call<{ Config?: { Labels?: Record<string, string> } }>('GET', `/images/${imageRef(sha)}/json`);
    if (r.status === 404) return false;
    if (r.status !== 200) throw new ProviderError('RUNTIME_UNAVAILABLE', `docker image inspect: ${r.status} ${r.text.slice(0, 300)}`);
    const label = r.body.Config?.Labels?.[IMAGE_LABEL];
    if (label !== sha)
      throw new ProviderError('SPAWN_FAILED', `docker image ${imageRef(sha)} is labelled ${label ?? 'nothing'}, not ${sha}`);
    return true;
  }

  /** Imports the image unless the daemon has it; returns its reference. */
  async ensure(sha: string, file: string): Promise<string> {
    if (this.known.has(sha)) return imageRef(sha);
    await this.lock.run(sha, async () => {
      if (this.known.has(sha) || (await this.has(sha))) return;
      await this.importFile(sha, file);
    });
    this.known.add(sha);
    return imageRef(sha);
  }

  /** The daemon lost an image we thought it had (someone pruned it): import it again next time. */
  forget(sha: string): void {
    this.known.delete(sha);
  }

  private async importFile(sha: string, file: string): Promise<void> {
    const mp = mkdtempSync(join(this.tmpDir, 'img-'));
    try {
      await this.mounts.mountImage(file, mp);
      try {
        const tar = spawn(
          await this.tarBin(),
          ['--create', '--file=-', '--numeric-owner', '--xattrs', '--xattrs-include=security.capability', '--directory', mp, '.'],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stderr = '';
        tar.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        const exited = new Promise<number>((res) => tar.on('close', (code) => res(code ?? -1)));
        const query = qs({ fromSrc: '-', repo: IMAGE_REPO, tag: sha.slice(0, 16), changes: `LABEL ${IMAGE_LABEL}=${sha}` });
        const r = await this.engine.must('POST', `/images/create${query}`, {
          stream: tar.stdout,
          headers: { 'content-type': 'application/x-tar', 'transfer-encoding': 'chunked' },
          timeoutMs: 600_000,
        });
        const code = await exited;
        if (code !== 0) throw new Error(`tar of ${file} failed (exit ${code}): ${stderr.trim().slice(0, 500)}`);
        // the progress stream reports failures as {"error": …} with status 200
        const err = /"error"\s*:\s*"([^"]*)"/.exec(r.text)?.[1];
        if (err) throw new Error(`docker import of ${file}: ${err}`);
      } finally {
        await this.mounts.unmount(await HostMounts.mountsUnder(mp), { loop: true });
      }
    } catch (e) {
      if (e instanceof ProviderError) throw e;
      throw new ProviderError('SPAWN_FAILED', `importing image ${sha.slice(0, 16)} into docker failed: ${(e as Error).message}`);
    } finally {
      await rmdir(mp).catch(() => {});
    }
  }
}
