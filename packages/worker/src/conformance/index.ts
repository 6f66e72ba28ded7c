/** `@scaibunker/worker/conformance`: the provider contract's test suite, for third-party providers too. */

export { pidAlive, raceTimeout, type ShResult, sh } from './helpers.js';
export { type ConformanceImage, type ConformanceSubject, providerConformance } from './providerConformance.js';
