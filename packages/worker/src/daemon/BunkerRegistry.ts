/**
 * The bunkers this worker knows about: which provider runs each, its agent channel (while it
 * is open) and its status. A channel that closes while its bunker is still registered means
 * the bunker died.
 */
import type { AgentClient } from '../agent/AgentClient.js';
import type { Provider } from '../providers/Provider.js';
import { WorkerError } from '../WorkerApi.js';

export type BunkerStatus = 'running' | 'paused' | 'stopped';

/** One bunker this worker knows about; `agent` is null once the channel is gone. */
export interface TrackedBunker {
  id: string;
  provider: Provider;
  agent: AgentClient | null;
  status: BunkerStatus;
}

export class BunkerRegistry {
  private readonly bunkers = new Map<string, TrackedBunker>();

  /** `onDied` is called when a registered bunker's agent channel closed on its own. */
  constructor(private readonly onDied: (bunkerId: string) => void) {}

  /** Registers a bunker: running with an agent, stopped without one. */
  track(id: string, provider: Provider, agent: AgentClient | null): void {
    const tracked: TrackedBunker = { id, provider, agent, status: agent ? 'running' : 'stopped' };
    this.bunkers.set(id, tracked);
    agent?.closed.then(
      () => this.onAgentClosed(tracked),
      () => this.onAgentClosed(tracked),
    );
  }

  get(bunkerId: string): TrackedBunker | undefined {
    return this.bunkers.get(bunkerId);
  }

  has(bunkerId: string): boolean {
    return this.bunkers.has(bunkerId);
  }

  ids(): ReadonlySet<string> {
    return new Set(this.bunkers.keys());
  }

  all(): TrackedBunker[] {
    return [...this.bunkers.values()];
  }

  /** Forgets a bunker, so its channel closing afterwards is not mistaken for it dying. */
  forget(bunkerId: string): TrackedBunker | undefined {
    const tracked = this.bunkers.get(bunkerId);
    this.bunkers.delete(bunkerId);
    return tracked;
  }

  /** Forgets every bunker; returns their open agent channels (for the caller to close). */
  forgetAll(): AgentClient[] {
    const agents = this.all()
      .map((b) => b.agent)
      .filter((a): a is AgentClient => a !== null);
    this.bunkers.clear();
    return agents;
  }

  /** The bunker's open agent channel: BUNKER_NOT_FOUND when unknown, CHANNEL_CLOSED when not running. */
  agentFor(bunkerId: string): AgentClient {
    const tracked = this.bunkers.get(bunkerId);
    if (!tracked) throw new WorkerError('BUNKER_NOT_FOUND', `no bunker ${bunkerId} on this worker`);
    if (!tracked.agent) throw new WorkerError('CHANNEL_CLOSED', `bunker ${bunkerId} is not running`);
    return tracked.agent;
  }

  /** The bunker, if it is in the `expected` state: BUNKER_NOT_FOUND when unknown or stopped, else INVALID_STATE. */
  inState(bunkerId: string, expected: BunkerStatus): TrackedBunker {
    const tracked = this.bunkers.get(bunkerId);
    if (!tracked || tracked.status === 'stopped') throw new WorkerError('BUNKER_NOT_FOUND', `no running bunker ${bunkerId} on this worker`);
    if (tracked.status !== expected) throw new WorkerError('INVALID_STATE', `bunker ${bunkerId} is ${tracked.status}`);
    return tracked;
  }

  /** BUNKER_NOT_FOUND unless this worker runs (or ran, and still journals) the bunker. */
  assertKnown(bunkerId: string): void {
    if (!this.bunkers.has(bunkerId)) throw new WorkerError('BUNKER_NOT_FOUND', `no bunker ${bunkerId} on this worker`);
  }

  private onAgentClosed(tracked: TrackedBunker): void {
    if (this.bunkers.get(tracked.id) !== tracked) return; // destroyed or worker stopped: expected
    tracked.agent = null;
    tracked.status = 'stopped';
    this.onDied(tracked.id);
  }
}
