/** A VM did not start; `pid` is the VMM process's when one was spawned (already killed). */
export class VmStartError extends Error {
  constructor(
    message: string,
    readonly pid: number | undefined,
  ) {
    super(message);
    this.name = 'VmStartError';
  }
}
