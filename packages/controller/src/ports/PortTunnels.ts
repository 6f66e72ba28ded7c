import type { Duplex } from 'node:stream';
import { ApiError } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { BunkerService } from '../bunkers/BunkerService.js';
import { fromWorkerError } from '../bunkers/workerErrors.js';
import type { TunnelBandwidth } from './TunnelBandwidth.js';
import type { TunnelLimiter } from './TunnelLimiter.js';

/** An open byte stream to a port inside a bunker, and the slot it holds. */
export interface OpenTunnel {
  stream: Duplex;
  bunkerId: string;
  port: number;
}

/** A port from a path segment: an integer 1–65535 written plainly, else VALIDATION_FAILED. */
export function parsePort(raw: unknown): number {
  const text = String(raw ?? '');
  const port = /^[1-9][0-9]{0,4}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new ApiError('VALIDATION_FAILED', `params/port must be an integer from 1 to 65535 (got ${JSON.stringify(text)})`, {
      field: 'params/port',
    });
  }
  return port;
}

/**
 * Opens tunnels to ports inside bunkers: the bunker must be the caller's and running, the
 * bunker under its cap of open connections; nothing listening is PORT_NOT_LISTENING (502).
 * A bunker with a `bandwidth_mbit` gets its tunnels held to it (both ways, all its tunnels
 * together). The slot is released when the stream closes, however it ends.
 */
export class PortTunnels {
  constructor(
    private readonly bunkers: BunkerService,
    private readonly limiter: TunnelLimiter,
    private readonly bandwidth: TunnelBandwidth,
  ) {}

  async open(principal: Principal, bunkerId: string, port: number): Promise<OpenTunnel> {
    const { row, worker } = await this.bunkers.requireRunning(principal, bunkerId);
    const release = this.limiter.acquire(bunkerId);
    let stream: Duplex;
    try {
      stream = await worker.openTunnel(bunkerId, port);
    } catch (err) {
      release();
      throw fromWorkerError(err);
    }
    if (row.bandwidth_mbit !== null && !stream.destroyed) stream = this.bandwidth.limit(bunkerId, row.bandwidth_mbit, stream);
    if (stream.destroyed) release();
    else stream.once('close', release);
    return { stream, bunkerId, port };
  }
}
