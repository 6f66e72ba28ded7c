import { timingSafeEqual } from 'node:crypto';
import { ApiError } from '@scaibunker/core';
import { CapabilityTokens } from './CapabilityTokens.js';
import { capabilityGrant, type StorageGrant, workerGrant } from './StorageGrant.js';

/**
 * Credentials for the storage routes: the worker token or a capability token. Needs no
 * database, so the stateless `scaibunker proxy` uses it alone.
 */
export class StorageAuthenticator {
  private readonly workerToken: Buffer | undefined;

  constructor(
    workerToken: string | undefined,
    readonly capabilities: CapabilityTokens = CapabilityTokens.fromWorkerToken(workerToken),
  ) {
    this.workerToken = workerToken ? Buffer.from(workerToken) : undefined;
  }

  isWorkerToken(token: string): boolean {
    if (!this.workerToken) return false;
    const given = Buffer.from(token);
    return given.length === this.workerToken.length && timingSafeEqual(given, this.workerToken);
  }

  /**
   * The grant of a worker or capability token; undefined for any other bearer (an API key, a
   * JWT), which the caller may still authenticate to tell 401 from 403. A forged or expired
   * capability token is UNAUTHENTICATED.
   */
  grantFor(header: string | undefined): StorageGrant | undefined {
    const token = /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
    if (!token) throw new ApiError('UNAUTHENTICATED', 'missing bearer credentials');
    if (this.isWorkerToken(token)) return workerGrant;
    if (CapabilityTokens.looksLikeOne(token)) return capabilityGrant(this.capabilities.verify(token));
    return undefined;
  }
}
