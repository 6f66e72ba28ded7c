import { ProviderError } from './Provider.js';

/** One step of a destroy that failed (the steps after it still ran). */
export interface DestroyFailure {
  /** The step's name, e.g. 'cgroup', 'unmount', 'network'. */
  step: string;
  error: Error;
}

/**
 * A destroy that left something behind: every step ran, and each one that failed is listed
 * (as AggregateError lists its errors), so the caller learns all that is left, not the first.
 * Destroy stays idempotent: calling it again retries what is left.
 */
export class BunkerDestroyError extends ProviderError {
  constructor(
    readonly bunkerId: string,
    readonly failures: readonly DestroyFailure[],
  ) {
    super('DESTROY_INCOMPLETE', `destroy ${bunkerId} incomplete: ${failures.map((f) => `${f.step}: ${f.error.message}`).join('; ')}`);
    this.name = 'BunkerDestroyError';
  }
}
