/**
 * The worker's heartbeat to the controller: one now and then every interval (the controller's
 * reply may change the interval), never two at once.
 */
import type { HeartbeatReply } from '../WorkerApi.js';
import { messageOf } from './agentErrors.js';
import type { WorkerLogger } from './WorkerOptions.js';

export class HeartbeatLoop {
  private timer: NodeJS.Timeout | null = null;
  /** Heartbeats are serialised: a tick never overlaps now() or another tick. */
  private chain: Promise<unknown> = Promise.resolve();
  private running = false;

  constructor(
    /** Sends one heartbeat and applies its reply. */
    private readonly beat: () => Promise<HeartbeatReply>,
    private intervalMs: number,
    private readonly logger: WorkerLogger,
  ) {}

  /**
   * Sends the first heartbeat, awaited so a caller knows the controller has heard of us (or
   * that it could not be reached — logged, retried on the next tick), then ticks until stop().
   */
  async start(): Promise<void> {
    this.running = true;
    await this.now().catch((err) => this.logger.warn(`first heartbeat failed (retrying next tick): ${messageOf(err)}`));
    this.schedule();
  }

  /** No more ticks; resolves once a heartbeat in flight has ended. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.chain.catch(() => {});
  }

  /** One heartbeat now, after any in flight; rejects if the controller could not be reached. */
  now(): Promise<HeartbeatReply> {
    const run = this.chain
      .catch(() => {})
      .then(async () => {
        const reply = await this.beat();
        if (reply.heartbeat_interval_s > 0) this.intervalMs = reply.heartbeat_interval_s * 1000;
        return reply;
      });
    this.chain = run.catch(() => {});
    return run;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.now()
        .catch((err) => this.logger.warn(`heartbeat failed (retrying next tick): ${messageOf(err)}`))
        .finally(() => this.schedule());
    }, this.intervalMs);
    // The daemon is kept alive by its server; a pending heartbeat alone should not be.
    this.timer.unref();
  }
}
