/** Firecracker refused an API request: its status and `fault_message`, and which request it was. */
export class FirecrackerApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly faultMessage: string,
  ) {
    super(`Firecracker refused ${method} ${path} (${status}): ${faultMessage}`);
    this.name = 'FirecrackerApiError';
  }
}
