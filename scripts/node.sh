#!/usr/bin/env bash
# `node` on the project's Node (.node-version; see lib/node.sh), for npm scripts started with
# the host's npm: `bash scripts/node.sh --import tsx bench/latency.ts`.
# shellcheck source=lib/node.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/node.sh"
use_node
exec node "$@"
