import { ApiError } from '../errors/ApiError.js';

export const BUNKER_STATES = ['pending', 'provisioning', 'running', 'paused', 'snapshotting', 'terminated', 'failed'] as const;
export type BunkerState = (typeof BUNKER_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<BunkerState> = new Set(['terminated', 'failed']);

/**
 * The one transition table. Any non-terminal state may also move to `failed`. A passivated
 * bunker (snapshotted, worker resources released) is `paused`: it got there from `snapshotting`,
 * and resuming it goes through `provisioning` again (back to `paused` if no worker takes it).
 */
const TRANSITIONS: Record<BunkerState, readonly BunkerState[]> = {
  pending: ['provisioning', 'terminated'],
  provisioning: ['running', 'paused', 'terminated'],
  running: ['paused', 'snapshotting', 'terminated'],
  paused: ['running', 'provisioning', 'terminated'],
  snapshotting: ['running', 'paused', 'terminated'],
  terminated: [],
  failed: [],
};

export function canTransition(from: BunkerState, to: BunkerState): boolean {
  if (TERMINAL_STATES.has(from)) return false;
  if (to === 'failed') return true;
  return TRANSITIONS[from].includes(to);
}

export function assertTransition(id: string, from: BunkerState, to: BunkerState): void {
  if (!canTransition(from, to)) {
    throw new ApiError('BUNKER_INVALID_TRANSITION', `bunker ${id} cannot go from ${from} to ${to}`, { from, to });
  }
}

export const TERMINATION_REASONS = [
  'user',
  'idle_timeout',
  'max_lifetime',
  'worker_lost',
  'quota_revoked',
  'provision_failed',
  'crashed',
] as const;
export type TerminationReasonKind = (typeof TERMINATION_REASONS)[number];
