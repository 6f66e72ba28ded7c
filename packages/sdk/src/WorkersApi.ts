import type { HttpTransport } from './HttpTransport.js';
import type { WorkerInfo } from './types.js';

/** Worker hosts (need `scaibunker:admin`). */
export class WorkersApi {
  constructor(private readonly transport: HttpTransport) {}

  async list(): Promise<WorkerInfo[]> {
    return (await this.transport.json('get', '/v1/modules/scaibunker/workers')).items;
  }

  /** Stop placing new bunkers on the worker; running ones stay. */
  drain(workerId: string): Promise<WorkerInfo> {
    return this.transport.json('post', '/v1/modules/scaibunker/workers/{id}/drain', { path: { id: workerId } });
  }

  /** Place bunkers on a drained worker again. */
  resume(workerId: string): Promise<WorkerInfo> {
    return this.transport.json('post', '/v1/modules/scaibunker/workers/{id}/resume', { path: { id: workerId } });
  }
}
