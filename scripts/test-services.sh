#!/usr/bin/env bash
# Installs and starts what the test suite talks to for real: PostgreSQL (the store suite runs on
# it as well as SQLite). Idempotent. Prints the PostgreSQL URL for the tests on stdout.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "[services] apt-get install postgresql" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  pg_lsclusters -h | grep -q "^$version main" || pg_createcluster "$version" main >&2
  pg_ctlcluster "$version" main start >&2
fi
# Peer auth over the Unix socket: a superuser role named after the OS user running the tests.
user=$(id -un)
su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='$user'\"" | grep -q 1 ||
  su postgres -c "createuser -s $user" >&2
echo "postgres://$user@localhost/postgres?host=/var/run/postgresql"
