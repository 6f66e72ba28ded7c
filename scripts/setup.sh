#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine needs to run ScaiBunker (the Node LTS of
# .node-version when the host's is older), compiles the TypeScript, then builds the agent and the
# base images. Idempotent: a second run only checks, and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

# Test-time tools: python3-venv, python3-pytest and mypy for the Python SDK's tests
# (packages/sdk-python); chromium for the web console's browser tests (test/e2e/console.e2e.test.ts);
# mariadb-server for the store suite on MariaDB (scripts/test-services.sh runs its own instance);
# docker.io for the Docker runtime's conformance run (the suite starts a private dockerd on its
# own socket, never the system one); proot for the proot isolation (no kernel isolation: dev and trusted use only).
APT_PACKAGES=(crun runc busybox-static tar zstd debootstrap e2fsprogs iproute2 nftables conntrack ca-certificates make gcc libc6-dev
  python3 python3-venv python3-pytest mypy chromium mariadb-server docker.io proot)

# shellcheck source=lib/ensure-packages.sh
. scripts/lib/ensure-packages.sh
ensure_packages "${APT_PACKAGES[@]}"

# shellcheck source=lib/node.sh
. scripts/lib/node.sh
ensure_node
use_node

# npm ci only when the lockfile or the Node ABI (native addons: better-sqlite3) changed since the
# last install.
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1) node-abi-$(node -p process.versions.modules)"
if [[ ! -f node_modules/.setup-lock-hash || "$(cat node_modules/.setup-lock-hash)" != "$lock_hash" ]]; then
  echo "[setup] npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.setup-lock-hash
fi

# TypeScript → packages/*/dist JavaScript for `scaibunker` (skipped when the sources are unchanged)
node scripts/build.mjs
# the web console's static files → packages/console/dist, served at /console/ (skipped when unchanged)
node scripts/build-console.mjs

echo "[setup] agent"
make -s -C packages/agent
make -s -C packages/worker/native/flowlog
make -s -C packages/worker/native/nonet

bash scripts/build-images.sh
# the microvm provider's guest kernel + initramfs (cached; without it `serve` offers containers only)
bash scripts/build-guest-kernel.sh
echo "[setup] ready"
