export { Controller, type ControllerOptions, VERSION } from './Controller.js';
export { type ControllerConfig, DEFAULT_CONFIG } from './config.js';
export { Store } from './store/Store.js';
