export type { BlobStore } from './blobs/BlobStore.js';
export { openBlobStore } from './blobs/openBlobStore.js';
export { Controller, type ControllerOptions, VERSION } from './Controller.js';
export { type ControllerConfig, DEFAULT_CONFIG, validateConfig } from './config.js';
export { InProcessQuotaCounters } from './quotas/InProcessQuotaCounters.js';
export type { QuotaCounters } from './quotas/QuotaCounters.js';
export { RedisQuotaCounters } from './quotas/RedisQuotaCounters.js';
export { StorageProxy } from './storage/StorageProxy.js';
export { Store } from './store/Store.js';
