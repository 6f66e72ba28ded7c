#!/usr/bin/env bash
# The one test command: set-up (idempotent), services, typecheck, lint, then every test file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Everything below on the project's Node (setup installed it when the host's is older).
# shellcheck source=lib/node.sh
. scripts/lib/node.sh
use_node
# PostgreSQL, MariaDB and Redis: tests that need them fail (never skip) when these are unset.
services=$(bash scripts/test-services.sh --env)
eval "$services"
export SCAIBUNKER_TEST_PG_URL SCAIBUNKER_TEST_MARIADB_URL SCAIBUNKER_TEST_REDIS_URL

echo "[test] typecheck"
npx tsc -p tsconfig.json
npx tsc -p packages/console/tsconfig.json
echo "[test] lint"
npx biome check --diagnostic-level=error .

mapfile -t files < <(find packages test -path '*/node_modules' -prune -o -name '*.test.ts' -print | sort)
if ((${#files[@]} == 0)); then
  echo "no test files found" >&2
  exit 1
fi
echo "[test] ${#files[@]} test files"
# Files run one at a time: they start real bunkers and servers on a 2-core machine.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}" 2>&1 | tee "$log" || status=$?
# Zero executed tests is a failure, not a pass.
passed=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -1)
failed=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -1)
if [[ -z "$passed" || "$passed" == 0 ]]; then
  echo "[test] no test passed" >&2
  status=1
fi

# The Python SDK (packages/sdk-python): pytest against its own `scaibunker serve`, mypy --strict,
# an offline pip install. pytest's summary line is "N passed, M failed in …".
echo "[test] python sdk"
pylog=$(mktemp)
trap 'rm -f "$log" "$pylog"' EXIT
py_status=0
python3 -m pytest -p no:cacheprovider -rfE packages/sdk-python/tests 2>&1 | tee "$pylog" || py_status=$?
py_summary=$({ grep -E '^=+ .*[0-9]+ (passed|failed|error).* =+$' "$pylog" || true; } | tail -1 | sed -E 's/^=+ (.*) in [0-9.]+s.* =+$/\1/')
if ! grep -qE '[1-9][0-9]* passed' <<<"$py_summary"; then
  echo "[test] no python test passed" >&2
  py_status=1
fi
((py_status == 0)) || status=1
# (awk, not grep: a summary without failures must not end the script under pipefail)
py_passed=$(awk '{for (i = 2; i <= NF; i++) if ($i ~ /^passed,?$/) n += $(i - 1)} END {print n + 0}' <<<"$py_summary")
py_failed=$(awk '{for (i = 2; i <= NF; i++) if ($i ~ /^(failed|errors?),?$/) n += $(i - 1)} END {print n + 0}' <<<"$py_summary")
echo "[test] node: pass ${passed:-0}, fail ${failed:-0}"
# Another runner's summary, in the form CI reads: "N passed, N failed".
echo "[test] python: ${py_passed:-0} passed, ${py_failed:-0} failed"
exit "$status"
