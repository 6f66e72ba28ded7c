export * from './api/permissions.js';
export * as schemas from './api/schemas.js';
export { ISOLATIONS, type Isolation } from './api/schemas.js';
export * from './errors/ApiError.js';
export * from './errors/codes.js';
export * from './ids/newId.js';
export * from './lifecycle/defaults.js';
export * from './lifecycle/transitions.js';
export * from './quotas/resources.js';
