/**
 * The built-in catalog DESIGN.md names, as OCI sources, for controllers that can reach public
 * registries (`--catalog-from-registries`). Where they can't, set-up's Debian-built equivalents
 * (`minimal`, `python`, `nodejs` from scripts/build-images.sh) are the catalog instead: named
 * for what they hold (Debian 12's Python 3.11 and Node 18), not for versions they don't have.
 * `python-3.12-ml` has no entry: no official image carries Python 3.12 with the ML stack.
 */
export const REGISTRY_CATALOG: ReadonlyArray<{ name: string; ref: string }> = [
  { name: 'python-3.12', ref: 'docker.io/library/python:3.12-slim' },
  { name: 'nodejs-22', ref: 'docker.io/library/node:22-slim' },
  { name: 'ubuntu-24.04', ref: 'docker.io/library/ubuntu:24.04' },
  { name: 'rust-latest', ref: 'docker.io/library/rust:slim' },
];
