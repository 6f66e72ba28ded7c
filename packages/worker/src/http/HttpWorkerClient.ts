/** The HTTP client of the worker contract lives in core (generated from WORKER_ROUTES); re-exported here. */
export { HttpWorkerClient } from '@scaibunker/core/worker-client';
