#!/usr/bin/env bash
# Builds the guest kernel + initramfs of the `microvm` provider offline from Debian packages.
#
#   scripts/build-guest-kernel.sh
#
# Output ($SCAIBUNKER_GUEST_DIR, default /var/lib/scaibunker/guest):
#   vmlinuz             Debian's cloud kernel (linux-image-<ver>-cloud-amd64, the version the
#                       linux-image-cloud-amd64 metapackage depends on), never installed to /boot
#   initramfs.cpio.gz   busybox-static + the virtio modules the cloud kernel has as modules
#                       (virtio, virtio_ring, virtio_mmio, virtio_blk, virtio_console,
#                       virtio_net with its failover/net_failover dependencies, and vsock with
#                       vmw_vsock_virtio_transport(_common) for Firecracker) + growfs (a static
#                       build of scripts/guest/growfs.c) + /init
#   guest.json          { kernel_version, key, files: { name: { sha256, size_bytes } } }
#
# How the guest boots (QEMU -M microvm, see packages/worker/src/providers/microvm/):
#   /init (busybox sh) mounts devtmpfs/proc/sysfs, insmods the modules in dependency order
#   (virtio-mmio devices are found through microvm's ACPI tables: the cloud kernel has no
#   virtio_mmio.device= command-line support), waits for /dev/vda and the virtio-serial port
#   named org.scaibunker.agent, mounts /dev/vda READ-WRITE at /newroot (the disk is a
#   per-bunker qcow2 overlay over the image's ext4, so the image itself is never written),
#   grows the ext4 online to the size of the disk when it is larger (growfs), moves /dev /proc
#   /sys into it, mounts /tmp, /dev/pts and /dev/shm, and `switch_root`s to
#   `/.scaibunker/agent --serial /dev/vportNpM` as PID 1 (which brings `lo` up).
#   Boot progress goes to /dev/kmsg ("[init] …"), i.e. to the hvc0 console log.
#   Every command /init runs is a fork+exec of busybox, ~10 ms of a TCG guest's boot, so it
#   uses shell builtins where it can and mounts several filesystems per `mount -a -T <fstab>`.
#   Kernel parameters read by /init: scaibunker.root=/dev/vda, scaibunker.port=<name>,
#   scaibunker.resize=0 (skip growing the filesystem). Under Firecracker (no virtio-serial) the
#   agent channel is virtio-vsock instead: scaibunker.vsock=<port> makes /init load the vsock
#   modules (only then), skip the wait for the serial port and start the agent with
#   `--vsock <port>`; guest.json's `modules` tells the worker that this guest can do that. A networked bunker (a virtio-net NIC
#   whose TAP the worker plumbs on the host) also gets scaibunker.ip=<addr>/<len>,
#   scaibunker.gw=<gateway> and scaibunker.dns=<nameserver>: /init loads virtio_net (only
#   then), brings eth0 up with that address and default route (IPv6 off: bunkers are
#   IPv4-only) and writes the bunker's /etc/resolv.conf. Without them eth0 stays down (an
#   `isolated` VM has no NIC at all).
#
# Caching: key = sha256(this script, kernel package version, busybox binary, growfs.c and the
# compiler's version). A re-run with the same key and intact outputs does nothing (< 1 s).
# The downloaded .deb stays in $SCAIBUNKER_BUILD_CACHE/guest (default /var/cache/scaibunker/guest).
#
# Environment:
#   SCAIBUNKER_GUEST_DIR        output dir (default /var/lib/scaibunker/guest)
#   SCAIBUNKER_BUILD_CACHE      cache dir (default /var/cache/scaibunker)
#   SCAIBUNKER_KERNEL_PACKAGE   explicit kernel package (default: dependency of linux-image-cloud-amd64)
#   SCAIBUNKER_GUEST_FORCE=1    ignore the cache
set -euo pipefail
umask 022

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
OUT_DIR=${SCAIBUNKER_GUEST_DIR:-/var/lib/scaibunker/guest}
CACHE_DIR=${SCAIBUNKER_BUILD_CACHE:-/var/cache/scaibunker}/guest
FORCE=${SCAIBUNKER_GUEST_FORCE:-0}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
MODULES=(virtio_ring virtio virtio_mmio virtio_blk virtio_console failover net_failover virtio_net
  vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport)

log() { echo "[guest] $*"; }
die() { echo "[guest] error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, device nodes in the initramfs)"
T0=$(now_ms)

# ---------------------------------------------------------------- host packages
# shellcheck source=lib/ensure-packages.sh
. "$(dirname "$SCRIPT_PATH")/lib/ensure-packages.sh"
ensure_packages qemu-system-x86 qemu-utils cpio busybox-static gzip gcc libc6-dev

# ---------------------------------------------------------------- local inputs
# growfs: grows the root filesystem online (see its header), compiled static into the initramfs
GROWFS_SRC="$(dirname "$SCRIPT_PATH")/guest/growfs.c"
[ -f "$GROWFS_SRC" ] || die "$GROWFS_SRC not found"

local_inputs() {
  printf 'script=%s\nbusybox=%s\ngrowfs=%s\ncc=%s\n' \
    "$(sha256_of "$SCRIPT_PATH")" "$(sha256_of /bin/busybox)" "$(sha256_of "$GROWFS_SRC")" "$(gcc --version | head -n1)"
}
LOCAL_INPUTS=$(local_inputs)
# Resolving the kernel package through apt-cache takes ~2 s, so a fast key (local inputs + the
# state of apt's package lists) short-circuits it while nothing could have changed.
FAST_KEY=$( { echo "$LOCAL_INPUTS"; echo "pkg=${SCAIBUNKER_KERNEL_PACKAGE:-}";
  stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)

# ---------------------------------------------------------------- cache check
outputs_intact() { # field value
  [ -f "$OUT_DIR/guest.json" ] && [ -f "$OUT_DIR/vmlinuz" ] && [ -f "$OUT_DIR/initramfs.cpio.gz" ] || return 1
  grep -q "\"$1\": \"$2\"" "$OUT_DIR/guest.json" || return 1
  local f sha
  for f in vmlinuz initramfs.cpio.gz; do
    sha=$(sed -nE "s/.*\"$f\": \\{ \"sha256\": \"([0-9a-f]{64})\".*/\\1/p" "$OUT_DIR/guest.json")
    [ -n "$sha" ] && [ "$(sha256_of "$OUT_DIR/$f")" = "$sha" ] || return 1
  done
}
if [ "$FORCE" != 1 ] && outputs_intact fast_key "$FAST_KEY"; then
  log "cached: $(sed -nE 's/.*"kernel_version": "([^"]+)".*/kernel \1/p' "$OUT_DIR/guest.json") ($OUT_DIR, $(( $(now_ms) - T0 )) ms)"
  exit 0
fi
# ---------------------------------------------------------------- kernel package (apt)
if [ -n "${SCAIBUNKER_KERNEL_PACKAGE:-}" ]; then
  KPKG=$SCAIBUNKER_KERNEL_PACKAGE
else
  KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ && !k { k = $2 } END { print k }')
  if [ -z "$KPKG" ]; then
    apt-get update -q >/dev/null 2>&1 || true
    KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ && !k { k = $2 } END { print k }')
  fi
  [ -n "$KPKG" ] || die "cannot resolve linux-image-cloud-amd64 (is the Debian mirror reachable?)"
fi
KVER=${KPKG#linux-image-}
KPKG_VERSION=$(apt-cache policy "$KPKG" 2>/dev/null | awk '/Candidate:/ && !v { v = $2 } END { print v }')
[ -n "$KPKG_VERSION" ] && [ "$KPKG_VERSION" != "(none)" ] || die "no candidate version for $KPKG"

KEY=$(printf '%s\nkernel=%s=%s\n' "$LOCAL_INPUTS" "$KPKG" "$KPKG_VERSION" | sha256sum | cut -d' ' -f1)
if [ "$FORCE" != 1 ] && outputs_intact key "$KEY"; then
  sed -i -E "s/\"fast_key\": \"[0-9a-f]*\"/\"fast_key\": \"$FAST_KEY\"/" "$OUT_DIR/guest.json"
  log "cached: kernel $KVER ($OUT_DIR, key ${KEY:0:12}, $(( $(now_ms) - T0 )) ms)"
  exit 0
fi


mkdir -p "$OUT_DIR" "$CACHE_DIR"
exec 9>"$CACHE_DIR/.build.lock"
flock 9

# ---------------------------------------------------------------- download + unpack
DEB=$(ls "$CACHE_DIR/${KPKG}_"*.deb 2>/dev/null | grep -F "_$(echo "$KPKG_VERSION" | sed 's/^[0-9]*://')_" | head -n1 || true)
if [ -z "$DEB" ]; then
  log "downloading $KPKG $KPKG_VERSION"
  # apt's sandbox user cannot write to a root-only cache dir: download in a world-writable temp dir
  dl=$(mktemp -d)
  chmod 0777 "$dl"
  (cd "$dl" && apt-get download -q "$KPKG=$KPKG_VERSION" >/dev/null 2>&1) || {
    apt-get update -q >/dev/null 2>&1 || true
    (cd "$dl" && apt-get download -q "$KPKG=$KPKG_VERSION" >/dev/null) || { rm -rf "$dl"; die "apt-get download $KPKG failed"; }
  }
  mv "$dl"/*.deb "$CACHE_DIR/"
  rm -rf "$dl"
  DEB=$(ls "$CACHE_DIR/${KPKG}_"*.deb | head -n1)
fi
WORK=$(mktemp -d "$CACHE_DIR/work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "unpacking $(basename "$DEB")"
dpkg-deb -x "$DEB" "$WORK/pkg"
KDIR="$WORK/pkg/lib/modules/$KVER"
[ -f "$WORK/pkg/boot/vmlinuz-$KVER" ] || die "no vmlinuz-$KVER in $DEB"
CONFIG="$WORK/pkg/boot/config-$KVER"

# ---------------------------------------------------------------- modules
# Which of the drivers we need are modules (=m) rather than built in (=y)?
declare -A CFG_OF=([virtio_ring]=VIRTIO [virtio]=VIRTIO [virtio_mmio]=VIRTIO_MMIO [virtio_blk]=VIRTIO_BLK [virtio_console]=VIRTIO_CONSOLE
  [failover]=FAILOVER [net_failover]=NET_FAILOVER [virtio_net]=VIRTIO_NET
  [vsock]=VSOCKETS [vmw_vsock_virtio_transport_common]=VIRTIO_VSOCKETS_COMMON [vmw_vsock_virtio_transport]=VIRTIO_VSOCKETS)
grep -q '^CONFIG_EXT4_FS=y' "$CONFIG" || die "the kernel has ext4 as a module; add it to MODULES"
grep -q '^CONFIG_DEVTMPFS=y' "$CONFIG" || die "the kernel lacks devtmpfs"
grep -q '^CONFIG_ACPI=y' "$CONFIG" || die "the kernel lacks ACPI (needed to find microvm's virtio-mmio devices)"
grep -q '^CONFIG_INET=y' "$CONFIG" || die "the kernel lacks IPv4 networking (networked bunkers)"
mod_path() { find "$KDIR/kernel" -name "$1.ko" -print -quit; }
mod_deps() { tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | tr ',' ' '; }
declare -A ADDED=()
ORDER=()
add_module() { # name: dependencies first
  local m=$1 f d
  [ -z "${ADDED[$m]:-}" ] || return 0
  ADDED[$m]=1
  f=$(mod_path "$m")
  if [ -z "$f" ]; then
    grep -qx "kernel/.*/$m.ko" "$KDIR/modules.builtin" 2>/dev/null && return 0
    local c=${CFG_OF[$m]:-}
    [ -n "$c" ] && grep -q "^CONFIG_$c=y" "$CONFIG" && return 0
    die "module $m is neither built in nor in the package"
  fi
  for d in $(mod_deps "$f"); do add_module "$d"; done
  ORDER+=("$m")
}
for m in "${MODULES[@]}"; do add_module "$m"; done
log "kernel $KVER; modules: ${ORDER[*]}"

# ---------------------------------------------------------------- initramfs tree
R="$WORK/root"
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,newroot,lib/modules,etc}
install -m 0755 /bin/busybox "$R/bin/busybox"
/bin/busybox --list-full | grep -v '^bin/busybox$' | while read -r app; do
  mkdir -p "$R/$(dirname "$app")"
  ln -sf /bin/busybox "$R/$app"
done
: >"$R/lib/modules/load.list"
for m in "${ORDER[@]}"; do
  cp "$(mod_path "$m")" "$R/lib/modules/$m.ko"
  echo "$m" >>"$R/lib/modules/load.list"
done
gcc -O2 -Wall -Wextra -Werror -std=gnu11 -static -s -o "$R/sbin/growfs" "$GROWFS_SRC" || die "compiling growfs"
# What /init mounts with one `mount -a` each (one busybox exec instead of one per filesystem):
# the kernel's filesystems first, then, once the root is mounted, /dev /proc /sys moved into it
# and its /tmp, /dev/pts and /dev/shm.
cat >"$R/etc/fstab.init" <<'FSTAB'
devtmpfs /dev devtmpfs mode=0755,nosuid 0 0
proc /proc proc nosuid,nodev,noexec 0 0
sysfs /sys sysfs nosuid,nodev,noexec 0 0
FSTAB
cat >"$R/etc/fstab.newroot" <<'FSTAB'
/dev /newroot/dev none move 0 0
/proc /newroot/proc none move 0 0
/sys /newroot/sys none move 0 0
tmpfs /newroot/tmp tmpfs nosuid,nodev,mode=1777 0 0
devpts /newroot/dev/pts devpts nosuid,noexec,newinstance,ptmxmode=0666,mode=0620 0 0
shm /newroot/dev/shm tmpfs nosuid,nodev,mode=1777 0 0
FSTAB
mknod -m 0600 "$R/dev/console" c 5 1
mknod -m 0666 "$R/dev/null" c 1 3

cat >"$R/init" <<'INIT'
#!/bin/sh
# ScaiBunker microvm guest init (built by scripts/build-guest-kernel.sh). Each external command
# is a fork+exec costing ~10 ms of a TCG boot: builtins (read, test, echo) wherever they do.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -a -T /etc/fstab.init
log() { echo "[init] $*" >/dev/kmsg; }
fail() { log "FATAL: $*"; sleep 1; echo o >/proc/sysrq-trigger; poweroff -f; }

ROOT=/dev/vda PORT=org.scaibunker.agent VSOCK= RESIZE=1 NET_IP= NET_GW= NET_DNS=
read -r CMDLINE </proc/cmdline
for arg in $CMDLINE; do
  case "$arg" in
    scaibunker.root=*) ROOT=${arg#*=} ;;
    scaibunker.port=*) PORT=${arg#*=} ;;
    scaibunker.vsock=*) VSOCK=${arg#*=} ;;
    scaibunker.resize=*) RESIZE=${arg#*=} ;;
    scaibunker.ip=*) NET_IP=${arg#*=} ;;
    scaibunker.gw=*) NET_GW=${arg#*=} ;;
    scaibunker.dns=*) NET_DNS=${arg#*=} ;;
  esac
done

while read -r m; do
  # the vsock driver only for a VMM whose agent channel it is (Firecracker), the NIC's only
  # for a networked bunker
  case "$m" in
    vsock|vmw_vsock_*) [ -n "$VSOCK" ] || continue ;;
    failover|net_failover|virtio_net) [ -n "$NET_IP" ] || continue ;;
  esac
  insmod "/lib/modules/$m.ko" || fail "insmod $m"
done </lib/modules/load.list
log "modules loaded"

# lo: the agent brings it up as PID 1.
# A networked bunker: the NIC's TAP is plumbed by the worker, every rule sits on the host side;
# here only the address, the default route and no IPv6 (the host drops it anyway).
if [ -n "$NET_IP" ]; then
  i=0
  while [ ! -e /sys/class/net/eth0 ]; do
    i=$((i + 1)); [ $i -lt 1000 ] || fail "no eth0 (virtio-net)"; sleep 0.01
  done
  for c in all default eth0; do
    [ -w "/proc/sys/net/ipv6/conf/$c/disable_ipv6" ] && echo 1 >"/proc/sys/net/ipv6/conf/$c/disable_ipv6"
  done
  ip addr add "$NET_IP" dev eth0 || fail "ip addr add $NET_IP"
  ip link set eth0 up || fail "eth0 up"
  [ -z "$NET_GW" ] || ip route add default via "$NET_GW" dev eth0 || fail "default route via $NET_GW"
  log "eth0 $NET_IP via ${NET_GW:-none}"
fi

# devices appear asynchronously (the virtio-serial ports after a host handshake)
i=0
while [ ! -b "$ROOT" ]; do
  i=$((i + 1)); [ $i -lt 1000 ] || fail "no root device $ROOT"; sleep 0.01
done
DEV=
i=0
while [ -z "$VSOCK" ] && [ -z "$DEV" ]; do
  for p in /sys/class/virtio-ports/*; do
    name=
    [ -f "$p/name" ] && read -r name <"$p/name"
    [ "$name" = "$PORT" ] && DEV=/dev/${p##*/}
  done
  [ -n "$DEV" ] && [ -c "$DEV" ] && break
  DEV=
  i=$((i + 1)); [ $i -lt 1000 ] || fail "no virtio-serial port named $PORT"; sleep 0.01
done
log "root $ROOT, agent ${DEV:-on vsock port $VSOCK}"

mount -t ext4 -o rw,noatime "$ROOT" /newroot || fail "mount $ROOT"
# growfs logs what it did; a filesystem that does not grow still boots, at the image's size
[ "$RESIZE" != 1 ] || growfs /newroot "$ROOT" >/dev/kmsg 2>&1 || log "growing the filesystem failed (continuing with the image's size)"
[ -x /newroot/.scaibunker/agent ] || fail "no /.scaibunker/agent in the image"
# /dev/pts and /dev/shm in the devtmpfs that is about to move under /newroot
mkdir -p /newroot/dev /newroot/proc /newroot/sys /newroot/tmp /dev/pts /dev/shm
if [ -n "$NET_DNS" ]; then
  # what a container bunker gets bind-mounted: every :53 is redirected to the worker's responder anyway
  mkdir -p /newroot/etc
  rm -f /newroot/etc/resolv.conf
  printf 'nameserver %s\noptions attempts:2 timeout:2\n' "$NET_DNS" >/newroot/etc/resolv.conf || fail "writing /etc/resolv.conf"
fi
if [ -n "$VSOCK" ]; then CHANNEL="--vsock $VSOCK"; else CHANNEL="--serial $DEV"; fi
log "switching to /.scaibunker/agent $CHANNEL"
mount -a -T /etc/fstab.newroot || fail "mounting /dev, /proc, /sys, /tmp, /dev/pts and /dev/shm in the root"
# shellcheck disable=SC2086 # CHANNEL is two words
exec switch_root /newroot /.scaibunker/agent $CHANNEL </dev/null >/newroot/dev/kmsg 2>&1
INIT
chmod 0755 "$R/init"

# ---------------------------------------------------------------- pack
find "$R" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true
(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --reproducible -R 0:0 --quiet) \
  | gzip -n -6 >"$WORK/initramfs.cpio.gz"
cp "$WORK/pkg/boot/vmlinuz-$KVER" "$WORK/vmlinuz"

VSHA=$(sha256_of "$WORK/vmlinuz")
ISHA=$(sha256_of "$WORK/initramfs.cpio.gz")
VSIZE=$(stat -c %s "$WORK/vmlinuz")
ISIZE=$(stat -c %s "$WORK/initramfs.cpio.gz")
mv -f "$WORK/vmlinuz" "$OUT_DIR/vmlinuz"
mv -f "$WORK/initramfs.cpio.gz" "$OUT_DIR/initramfs.cpio.gz"
cat >"$OUT_DIR/guest.json.tmp.$$" <<EOF
{
  "kernel_version": "$KVER",
  "kernel_package": "$KPKG=$KPKG_VERSION",
  "modules": [$(printf '"%s",' "${ORDER[@]}" | sed 's/,$//')],
  "key": "$KEY",
  "fast_key": "$FAST_KEY",
  "files": {
    "vmlinuz": { "sha256": "$VSHA", "size_bytes": $VSIZE },
    "initramfs.cpio.gz": { "sha256": "$ISHA", "size_bytes": $ISIZE }
  }
}
EOF
mv -f "$OUT_DIR/guest.json.tmp.$$" "$OUT_DIR/guest.json"
log "ready: $OUT_DIR (kernel $KVER, initramfs $(( ISIZE / 1024 )) KiB, $(( $(now_ms) - T0 )) ms)"
