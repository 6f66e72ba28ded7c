/**
 * `/bin/sh -c CGROUP_EXEC sh PROCS_FILE... -- COMMAND...`: puts the shell in every given
 * cgroup.procs file, then execs the command, so it never runs a moment outside its cgroups
 * (the microvm provider's QEMU, the proot provider's proot).
 */
export const CGROUP_EXEC = 'for f; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; shift; exec "$@"';
