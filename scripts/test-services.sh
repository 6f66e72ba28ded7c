#!/usr/bin/env bash
# Installs and starts what the test suite talks to for real: PostgreSQL and MariaDB (the store
# suite runs on both as well as SQLite), Redis (the quota counters run on it as well as in-process), and the
# registry tools the image tests use (skopeo, umoci, docker-registry).
# Idempotent. Prints the PostgreSQL URL for the tests on stdout; with `--env`, prints
# `SCAIBUNKER_TEST_PG_URL=…`, `SCAIBUNKER_TEST_MARIADB_URL=…` and `SCAIBUNKER_TEST_REDIS_URL=…`
# lines (shell-quoted) instead.
set -euo pipefail
REDIS_PORT=${SCAIBUNKER_TEST_REDIS_PORT:-6399}
MARIADB_PORT=${SCAIBUNKER_TEST_MARIADB_PORT:-3399}

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
pg_url="postgres://$user@localhost/postgres?host=/var/run/postgresql"

# Redis for the quota counters: a throwaway instance on its own port, no persistence.
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "[services] apt-get install redis-server" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
  fi
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --dir /tmp --logfile "/tmp/scaibunker-test-redis-$REDIS_PORT.log" >&2
  for _ in $(seq 1 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "$REDIS_PORT" ping >/dev/null || {
    echo "[services] redis-server did not answer on port $REDIS_PORT" >&2
    exit 1
  }
fi
redis_url="redis://127.0.0.1:$REDIS_PORT/0"

# MariaDB: a throwaway server of its own (datadir, socket, pid file under one private directory,
# TCP on 127.0.0.1:$MARIADB_PORT only, no system configuration read), never the system instance.
# Tests connect as `scaibunker` (all privileges: each store test creates its own database).
mariadb_dir="${TMPDIR:-/tmp}/scaibunker-test-mariadb-$MARIADB_PORT"
mariadb_sock="$mariadb_dir/mysqld.sock"
if ! mariadb-admin --no-defaults --socket="$mariadb_sock" -uroot ping >/dev/null 2>&1; then
  if ! command -v mariadbd >/dev/null || ! command -v mariadb-install-db >/dev/null; then
    echo "[services] apt-get install mariadb-server" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client >/dev/null
  fi
  mkdir -p "$mariadb_dir"
  chown mysql:mysql "$mariadb_dir"
  chmod 700 "$mariadb_dir"
  if [[ ! -d "$mariadb_dir/data/mysql" ]]; then
    mariadb-install-db --no-defaults --user=mysql --datadir="$mariadb_dir/data" --auth-root-authentication-method=socket \
      --skip-test-db >"$mariadb_dir/install.log" 2>&1 || {
      cat "$mariadb_dir/install.log" >&2
      exit 1
    }
  fi
  setsid mariadbd --no-defaults --user=mysql --datadir="$mariadb_dir/data" --socket="$mariadb_sock" \
    --pid-file="$mariadb_dir/mysqld.pid" --port="$MARIADB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --log-error="$mariadb_dir/error.log" --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
    --max-connections=500 </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 100); do
    mariadb-admin --no-defaults --socket="$mariadb_sock" -uroot ping >/dev/null 2>&1 && break
    sleep 0.2
  done
  mariadb-admin --no-defaults --socket="$mariadb_sock" -uroot ping >/dev/null 2>&1 || {
    echo "[services] mariadbd did not answer on $mariadb_sock (see $mariadb_dir/error.log)" >&2
    exit 1
  }
fi
mariadb --no-defaults --socket="$mariadb_sock" -uroot -e "CREATE USER IF NOT EXISTS 'scaibunker'@'127.0.0.1' IDENTIFIED BY 'scaibunker';
  GRANT ALL PRIVILEGES ON *.* TO 'scaibunker'@'127.0.0.1' WITH GRANT OPTION;" >&2
mariadb_url="mysql://scaibunker:scaibunker@127.0.0.1:$MARIADB_PORT/"

# The image tests push locally built OCI images (umoci) into Debian's registry with skopeo.
missing=()
for tool in skopeo:skopeo umoci:umoci docker-registry:docker-registry; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
done
if ((${#missing[@]})); then
  echo "[services] apt-get install ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == "--env" ]]; then
  printf 'SCAIBUNKER_TEST_PG_URL=%q\n' "$pg_url"
  printf 'SCAIBUNKER_TEST_MARIADB_URL=%q\n' "$mariadb_url"
  printf 'SCAIBUNKER_TEST_REDIS_URL=%q\n' "$redis_url"
else
  echo "$pg_url"
fi
