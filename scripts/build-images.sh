#!/usr/bin/env bash
# Bakes ScaiBunker's built-in base images offline from Debian packages.
#
#   scripts/build-images.sh [IMAGE ...]        # default: minimal python nodejs
#
# Each image becomes one ext4 file named by its sha256 in $SCAIBUNKER_IMAGE_DIR
# (default /var/lib/scaibunker/images) plus an entry in catalog.json there:
#   [{ "name": "minimal", "sha256": "...", "size_bytes": N, "file": "<sha>.ext4" }, ...]
#
# Images:
#   minimal  busybox-static rootfs (busybox applet symlinks, root + user uid 1000)
#   python   debootstrap --variant=minbase bookworm + python3, user uid 1000
#   nodejs   debootstrap --variant=minbase bookworm + nodejs (Debian's Node 18; no npm: its
#            Debian package pulls in some 300 others), user uid 1000
# Both get the in-bunker agent at /.scaibunker/agent and an empty /.scaibunker/run (0700).
#
# Caching: the cache key of an image is sha256 over (this script, the agent binary, the
# package list / busybox binary). $IMAGE_DIR/.keys/<name>.<key>.json remembers the result,
# so a re-run with unchanged inputs only rewrites the catalog (< 1 s). The debootstrapped
# python and nodejs base rootfs are kept in $SCAIBUNKER_BUILD_CACHE (default /var/cache/scaibunker)
# keyed by suite+mirror+packages, so an agent change re-bakes them in seconds.
#
# Environment:
#   SCAIBUNKER_IMAGE_DIR      output dir (default /var/lib/scaibunker/images)
#   SCAIBUNKER_BUILD_CACHE    build cache dir (default /var/cache/scaibunker)
#   SCAIBUNKER_AGENT_BIN      agent binary (default packages/agent/build/scaibunker-agent;
#                             built with `make -C packages/agent` when missing)
#   SCAIBUNKER_DEBIAN_MIRROR  mirror (default: first URI in /etc/apt sources, else deb.debian.org)
#   SCAIBUNKER_PYTHON_PACKAGES extra packages for the python image (default: python3)
#   SCAIBUNKER_NODEJS_PACKAGES packages for the nodejs image (default: nodejs)
#   SCAIBUNKER_IMAGES_FORCE=1 ignore the cache
#   SOURCE_DATE_EPOCH         timestamp used for files and the filesystem (default 1700000000)
set -euo pipefail
umask 022

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
REPO_ROOT=$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)
IMAGE_DIR=${SCAIBUNKER_IMAGE_DIR:-/var/lib/scaibunker/images}
CACHE_DIR=${SCAIBUNKER_BUILD_CACHE:-/var/cache/scaibunker}
AGENT_BIN=${SCAIBUNKER_AGENT_BIN:-$REPO_ROOT/packages/agent/build/scaibunker-agent}
SUITE=bookworm
PYTHON_PACKAGES=${SCAIBUNKER_PYTHON_PACKAGES:-python3}
NODEJS_PACKAGES=${SCAIBUNKER_NODEJS_PACKAGES:-nodejs}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH
FORCE=${SCAIBUNKER_IMAGES_FORCE:-0}

if [ $# -gt 0 ]; then IMAGES=("$@"); else IMAGES=(minimal python nodejs); fi

log() { echo "[images] $*"; }
die() { echo "[images] error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mkfs ownership)"

# ---------------------------------------------------------------- host packages
# shellcheck source=lib/ensure-packages.sh
. "$(dirname "$SCRIPT_PATH")/lib/ensure-packages.sh"

needed=(e2fsprogs coreutils)
for img in "${IMAGES[@]}"; do
  case "$img" in
    minimal) needed+=(busybox-static) ;;
    python | nodejs) needed+=(debootstrap) ;;
    *) die "unknown image '$img' (known: minimal python nodejs)" ;;
  esac
done
ensure_packages "${needed[@]}"

# ---------------------------------------------------------------- agent
if [ ! -x "$AGENT_BIN" ] && [ -z "${SCAIBUNKER_AGENT_BIN:-}" ] && [ -f "$REPO_ROOT/packages/agent/Makefile" ]; then
  log "agent binary missing, building it (make -C packages/agent)"
  make -s -C "$REPO_ROOT/packages/agent" >&2 || die "building the agent failed"
fi
[ -x "$AGENT_BIN" ] || die "agent binary not found at $AGENT_BIN (build packages/agent first or set SCAIBUNKER_AGENT_BIN)"

mkdir -p "$IMAGE_DIR" "$IMAGE_DIR/.keys" "$CACHE_DIR"

debian_mirror() {
  if [ -n "${SCAIBUNKER_DEBIAN_MIRROR:-}" ]; then echo "$SCAIBUNKER_DEBIAN_MIRROR"; return; fi
  local uri=""
  if [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" { for (i=2;i<=NF;i++) if ($i ~ /^https?:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ { for (i=2;i<=NF;i++) if ($i !~ /security/) { print $i; exit } }' | head -n1)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# ---------------------------------------------------------------- helpers
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
SCRIPT_SHA=$(sha256_of "$SCRIPT_PATH")
AGENT_SHA=$(sha256_of "$AGENT_BIN")

inputs_key() { # name, package-list text
  printf 'script=%s\nagent=%s\nimage=%s\npackages=%s\n' "$SCRIPT_SHA" "$AGENT_SHA" "$1" "$2" | sha256sum | cut -d' ' -f1
}

inject_agent() { # rootfs
  local r=$1
  mkdir -p "$r/.scaibunker"
  chmod 0755 "$r/.scaibunker"
  install -m 0755 "$AGENT_BIN" "$r/.scaibunker/agent"
  rm -rf "$r/.scaibunker/run"
  mkdir -m 0700 "$r/.scaibunker/run"
}

add_user() { # rootfs: user uid/gid 1000 with /home/user
  local r=$1
  grep -q '^user:' "$r/etc/group" || echo 'user:x:1000:' >>"$r/etc/group"
  grep -q '^user:' "$r/etc/passwd" || echo 'user:x:1000:1000:user:/home/user:/bin/sh' >>"$r/etc/passwd"
  if [ -f "$r/etc/shadow" ] && ! grep -q '^user:' "$r/etc/shadow"; then
    echo 'user:*:19000:0:99999:7:::' >>"$r/etc/shadow"
  fi
  mkdir -p "$r/home/user"
  chown 1000:1000 "$r/home/user"
  chmod 0755 "$r/home/user"
}

# Makes "<sha>.ext4" from a rootfs dir; echoes "sha size".
make_ext4() { # name rootfs
  local name=$1 rootfs=$2 tmp files kb size_mb uuid attempt
  # normalise timestamps so identical inputs give (nearly) identical images
  find "$rootfs" -xdev -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true
  files=$(find "$rootfs" -xdev | wc -l)
  kb=$(du -sk --apparent-size "$rootfs" | cut -f1)
  # content + 4 KiB slack per file (block rounding) + 20% + 16 MiB headroom for metadata
  size_mb=$(( (kb + files * 4) * 12 / 10 / 1024 + 16 ))
  uuid=$(printf '%s' "scaibunker-$name" | sha256sum | sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-8\4-\5/')
  tmp="$IMAGE_DIR/.tmp-$name-$$.ext4"
  for attempt in 1 2 3; do
    rm -f "$tmp"
    truncate -s "${size_mb}M" "$tmp"
    if mkfs.ext4 -q -F -t ext4 -b 4096 -m 0 -O ^has_journal,^resize_inode \
        -N $(( files + files / 5 + 256 )) -L "$name" -U "$uuid" \
        -E "root_owner=0:0,hash_seed=$uuid,lazy_itable_init=0" \
        -d "$rootfs" "$tmp" >"$CACHE_DIR/mkfs-$name.log" 2>&1; then
      break
    fi
    [ $attempt -lt 3 ] || { cat "$CACHE_DIR/mkfs-$name.log" >&2; rm -f "$tmp"; die "mkfs.ext4 failed for $name"; }
    size_mb=$(( size_mb * 2 ))
  done
  # mke2fs 1.47.0 copies each file's ctime from the host; pin it so re-bakes are byte-identical
  (cd "$rootfs" && find . -xdev -print | sed -n -e '/"/d' -e 's|^\.||' -e 's|^$|/|' \
      -e "s|.*|sif \"&\" ctime @$SOURCE_DATE_EPOCH\nsif \"&\" atime @$SOURCE_DATE_EPOCH|p") >"$CACHE_DIR/ctime-$name.cmds"
  debugfs -w -f "$CACHE_DIR/ctime-$name.cmds" "$tmp" >/dev/null 2>&1 || true
  rm -f "$CACHE_DIR/ctime-$name.cmds"
  local sha size
  sha=$(sha256_of "$tmp")
  size=$(stat -c %s "$tmp")
  chmod 0444 "$tmp"
  mv -f "$tmp" "$IMAGE_DIR/$sha.ext4"
  echo "$sha $size"
}

# ---------------------------------------------------------------- rootfs builders
build_minimal_rootfs() { # dest
  local r=$1 app
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,proc,sys,dev,run,var/tmp,mnt,root,home,tmp}
  chmod 1777 "$r/tmp" "$r/var/tmp"
  chmod 0700 "$r/root"
  install -m 0755 /bin/busybox "$r/bin/busybox"
  # the equivalent of `busybox --install -s`, done from the host (no /proc needed)
  /bin/busybox --list-full | grep -v '^bin/busybox$' | sed "s|^|$r/|" | xargs -r -n 64 bash -c '
    for app; do [ -d "${app%/*}" ] || mkdir -p "${app%/*}"; done
    for app; do ln -sf /bin/busybox "$app"; done' _
  cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$r/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
  cat >"$r/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
  chmod 0640 "$r/etc/shadow"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
  : >"$r/etc/resolv.conf"
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' >"$r/etc/profile"
  add_user "$r"
}

debian_base_rootfs() { # name packages -> echoes path of the cached debootstrapped base
  local name=$1 packages=$2 mirror key base
  mirror=$(debian_mirror)
  key=$(printf '%s|%s|minbase|%s' "$SUITE" "$mirror" "$packages" | sha256sum | cut -c1-16)
  base="$CACHE_DIR/$name-base-$key"
  if [ ! -f "$base/.complete" ]; then
    rm -rf "$base" "$base.tmp"
    local tarball="$CACHE_DIR/debootstrap-$SUITE-minbase-$key.tgz" pkgs
    pkgs=$(echo "$packages" | tr ' ' ',')
    if [ ! -f "$tarball" ]; then
      log "$name: downloading packages ($SUITE minbase + $pkgs from $mirror)" >&2
      debootstrap --variant=minbase --include="$pkgs" --make-tarball="$tarball.tmp" \
        "$SUITE" "$CACHE_DIR/debootstrap-work-$key" "$mirror" >"$CACHE_DIR/debootstrap.log" 2>&1 \
        || { tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; rm -rf "$CACHE_DIR/debootstrap-work-$key"; die "debootstrap --make-tarball failed"; }
      mv "$tarball.tmp" "$tarball"
      rm -rf "$CACHE_DIR/debootstrap-work-$key"
    fi
    log "$name: debootstrap $SUITE minbase + $pkgs" >&2
    debootstrap --variant=minbase --include="$pkgs" --unpack-tarball="$tarball" \
      "$SUITE" "$base.tmp" "$mirror" >"$CACHE_DIR/debootstrap.log" 2>&1 \
      || { tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
    # slim down: no package caches, lists or logs in the image
    rm -rf "$base.tmp"/var/cache/apt/archives/*.deb "$base.tmp"/var/cache/apt/*.bin \
      "$base.tmp"/var/lib/apt/lists/* "$base.tmp"/var/log/*.log "$base.tmp"/var/log/apt/* \
      "$base.tmp"/var/cache/debconf/*-old "$base.tmp"/var/lib/dpkg/*-old "$base.tmp"/debootstrap
    printf 'deb %s %s main\n' "$mirror" "$SUITE" >"$base.tmp/etc/apt/sources.list"
    : >"$base.tmp/etc/resolv.conf"
    mv "$base.tmp" "$base"
    touch "$base/.complete"
  fi
  echo "$base"
}

build_python_rootfs() { # dest
  local r=$1 base
  base=$(debian_base_rootfs python "$PYTHON_PACKAGES")
  cp -a "$base" "$r"
  rm -f "$r/.complete"
  add_user "$r"
}

build_nodejs_rootfs() { # dest
  local r=$1 base
  base=$(debian_base_rootfs nodejs "$NODEJS_PACKAGES")
  cp -a "$base" "$r"
  rm -f "$r/.complete"
  add_user "$r"
}

package_list() { # name -> text that goes into the cache key
  case "$1" in
    minimal) echo "busybox-static $(sha256_of /bin/busybox)" ;;
    python) echo "$SUITE minbase $(debian_mirror) $PYTHON_PACKAGES" ;;
    nodejs) echo "$SUITE minbase $(debian_mirror) $NODEJS_PACKAGES" ;;
  esac
}

# ---------------------------------------------------------------- main
declare -A RESULT_SHA RESULT_SIZE

write_catalog() { # catalog.json: entries built now replace entries of the same name; others are kept
  local catalog="$IMAGE_DIR/catalog.json" name line n i
  local -A seen=()
  local entries=()
  for name in "${IMAGES[@]}"; do
    [ -n "${RESULT_SHA[$name]:-}" ] || continue
    seen[$name]=1
    entries+=("$(printf '  { "name": "%s", "sha256": "%s", "size_bytes": %s, "file": "%s.ext4" }' \
      "$name" "${RESULT_SHA[$name]}" "${RESULT_SIZE[$name]}" "${RESULT_SHA[$name]}")")
  done
  if [ -f "$catalog" ]; then
    while IFS= read -r line; do
      n=$(sed -nE 's/.*"name": *"([^"]+)".*/\1/p' <<<"$line")
      if [ -n "$n" ] && [ -z "${seen[$n]:-}" ]; then entries+=("$(sed -E 's/,[[:space:]]*$//' <<<"$line")"); fi
    done < <(grep '"name"' "$catalog" || true)
  fi
  {
    echo "["
    for i in "${!entries[@]}"; do
      if [ "$i" -lt $(( ${#entries[@]} - 1 )) ]; then echo "${entries[$i]},"; else echo "${entries[$i]}"; fi
    done
    echo "]"
  } >"$catalog.tmp.$$"
  mv -f "$catalog.tmp.$$" "$catalog"
}

image_in_use() { # path: loop-mounted somewhere (e.g. by a worker)?
  losetup -j "$1" 2>/dev/null | grep -q . 
}

is_cached() { # name -> 0 when the key file and its image exist
  local key keyfile sha size
  key=$(inputs_key "$1" "$(package_list "$1")")
  keyfile="$IMAGE_DIR/.keys/$1.$key"
  [ "$FORCE" != 1 ] && [ -f "$keyfile" ] || return 1
  read -r sha size <"$keyfile"
  [ -f "$IMAGE_DIR/$sha.ext4" ]
}

# one builder at a time per cache; a run that only finds cached images never waits for it
for name in "${IMAGES[@]}"; do
  if ! is_cached "$name"; then
    exec 9>"$CACHE_DIR/.build.lock"
    flock 9
    break
  fi
done

for name in "${IMAGES[@]}"; do
  key=$(inputs_key "$name" "$(package_list "$name")")
  keyfile="$IMAGE_DIR/.keys/$name.$key"
  if [ "$FORCE" != 1 ] && [ -f "$keyfile" ]; then
    read -r sha size <"$keyfile"
    if [ -f "$IMAGE_DIR/$sha.ext4" ]; then
      RESULT_SHA[$name]=$sha; RESULT_SIZE[$name]=$size
      log "$name: cached sha256=$sha ($(( size / 1048576 )) MiB)"
      continue
    fi
  fi
  log "$name: baking…"
  t0=$(now_ms)
  work="$CACHE_DIR/work-$name"
  rm -rf "$work"
  "build_${name}_rootfs" "$work"
  inject_agent "$work"
  read -r sha size < <(make_ext4 "$name" "$work")
  [ -n "${sha:-}" ] || die "$name: mkfs produced no image"
  rm -rf "$work"
  # forget the previous bake of this image; drop its file unless a bunker still has it mounted
  for old in "$IMAGE_DIR/.keys/$name."*; do
    [ -f "$old" ] || continue
    read -r old_sha _ <"$old" || true
    rm -f "$old"
    if [ -n "${old_sha:-}" ] && [ "$old_sha" != "$sha" ] && ! image_in_use "$IMAGE_DIR/$old_sha.ext4"; then
      rm -f "$IMAGE_DIR/$old_sha.ext4"
    fi
  done
  echo "$sha $size" >"$keyfile"
  RESULT_SHA[$name]=$sha; RESULT_SIZE[$name]=$size
  t1=$(now_ms)
  log "$name: ready sha256=$sha ($(( size / 1048576 )) MiB, $(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 )) s)"
  write_catalog
done
write_catalog
