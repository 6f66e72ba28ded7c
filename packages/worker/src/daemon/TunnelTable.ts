/** The port tunnels open per bunker: the cap on them, and ending them when the bunker goes. */
import type { Duplex } from 'node:stream';
import { WorkerError } from '../WorkerApi.js';

/** Concurrent port tunnels per bunker (the agent caps a connection at 256 too). */
export const MAX_TUNNELS_PER_BUNKER = 256;

export class TunnelTable {
  private readonly open = new Map<string, Set<Duplex>>();
  private readonly connecting = new Map<string, number>();

  /**
   * Opens a tunnel with `connect` unless the bunker already has MAX_TUNNELS_PER_BUNKER
   * (TOO_MANY_TUNNELS; connects in flight count too, so a burst cannot get past the cap).
   * Once connected, `stillCurrent()` false (the bunker went away meanwhile) destroys it:
   * CHANNEL_CLOSED. The tunnel leaves the table when it closes.
   */
  async add(bunkerId: string, connect: () => Promise<Duplex>, stillCurrent: () => boolean): Promise<Duplex> {
    let open = this.open.get(bunkerId);
    if (!open) {
      open = new Set();
      this.open.set(bunkerId, open);
    }
    if (open.size + (this.connecting.get(bunkerId) ?? 0) >= MAX_TUNNELS_PER_BUNKER) {
      throw new WorkerError('TOO_MANY_TUNNELS', `bunker ${bunkerId} already has ${MAX_TUNNELS_PER_BUNKER} open tunnels`);
    }
    this.connecting.set(bunkerId, (this.connecting.get(bunkerId) ?? 0) + 1);
    let tunnel: Duplex;
    try {
      tunnel = await connect();
    } finally {
      const n = (this.connecting.get(bunkerId) ?? 1) - 1;
      if (n) this.connecting.set(bunkerId, n);
      else this.connecting.delete(bunkerId);
    }
    const set = this.open.get(bunkerId);
    if (!set || !stillCurrent()) {
      tunnel.destroy(); // the bunker was destroyed while we connected
      throw new WorkerError('CHANNEL_CLOSED', `bunker ${bunkerId} went away while the tunnel connected`);
    }
    set.add(tunnel);
    tunnel.once('close', () => set.delete(tunnel));
    return tunnel;
  }

  /** Ends every tunnel of the bunker (also one whose connect is still in flight: it finds its set gone). */
  closeAll(bunkerId: string): void {
    for (const t of this.open.get(bunkerId) ?? []) t.destroy();
    this.open.delete(bunkerId);
  }
}
