/** What `/readyz` reports for one backing service. */
export interface DependencyReport {
  ok: boolean;
  /** Why it is not ok (the last failure seen). */
  error?: string;
  /** When it was first seen failing (ISO). */
  since?: string;
}

/**
 * Whether one backing service (the database, Redis, the blob store) answers, as seen by the
 * calls that use it. A failure is logged once when the service goes away, and once more when
 * it answers again, never once per failed request: an outage under load would flood the log.
 */
export class DependencyState {
  private downSince: number | undefined;
  private lastError = '';

  constructor(
    readonly name: string,
    private readonly log: (msg: string) => void = (m) => console.error(m),
  ) {}

  get available(): boolean {
    return this.downSince === undefined;
  }

  down(err: unknown): void {
    this.lastError = messageOf(err);
    if (this.downSince !== undefined) return;
    this.downSince = Date.now();
    this.log(`[${this.name}] unavailable: ${this.lastError}`);
  }

  up(): void {
    if (this.downSince === undefined) return;
    this.log(`[${this.name}] available again after ${((Date.now() - this.downSince) / 1000).toFixed(1)} s`);
    this.downSince = undefined;
  }

  report(): DependencyReport {
    if (this.downSince === undefined) return { ok: true };
    return { ok: false, error: this.lastError, since: new Date(this.downSince).toISOString() };
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
