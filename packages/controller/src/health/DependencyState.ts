/**
 * Whether one backing service (the database, Redis, the blob store) answers, as seen by the
 * calls that use it. A failure is logged once when the service goes away, and once more when
 * it answers again, never once per failed request: an outage under load would flood the log.
 */
export class DependencyState {
  private downSince: number | undefined;

  constructor(
    readonly name: string,
    private readonly log: (msg: string) => void = (m) => console.error(m),
  ) {}

  get available(): boolean {
    return this.downSince === undefined;
  }

  down(err: unknown): void {
    if (this.downSince !== undefined) return;
    this.downSince = Date.now();
    this.log(`[${this.name}] unavailable: ${messageOf(err)}`);
  }

  up(): void {
    if (this.downSince === undefined) return;
    this.log(`[${this.name}] available again after ${((Date.now() - this.downSince) / 1000).toFixed(1)} s`);
    this.downSince = undefined;
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
