#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine needs to run ScaiBunker, then builds the agent
# and the base images. Idempotent: a second run only checks, and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(crun runc busybox-static debootstrap e2fsprogs iproute2 ca-certificates make gcc libc6-dev)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci only when the lockfile changed since the last install.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f node_modules/.setup-lock-hash || "$(cat node_modules/.setup-lock-hash)" != "$lock_hash" ]]; then
  echo "[setup] npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.setup-lock-hash
fi

echo "[setup] agent"
make -s -C packages/agent

bash scripts/build-images.sh
echo "[setup] ready"
