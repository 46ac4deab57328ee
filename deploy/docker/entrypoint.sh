#!/bin/sh
# The image's entrypoint: `bff serve` with one worker per CPU the container may use.
#
# The number of CPUs is the container's CPU limit (cgroup v2 `cpu.max`, cgroup v1
# `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded up, else the CPUs the process may run on
# (`nproc`). A Kubernetes `limits.cpu: "2"` gives two workers, not one per core of the node.
# `--workers N` or BFF_SERVER__WORKERS chooses the number instead.
#
#   bff-entrypoint [serve] [bff serve options]   the gateway (the default)
#   bff-entrypoint COMMAND [args]                any other bff command (services, check-config, ...)
set -eu

CPU_MAX_FILE="${CPU_MAX_FILE:-/sys/fs/cgroup/cpu.max}"
CFS_DIR="${CFS_DIR:-/sys/fs/cgroup/cpu}"

cpu_limit() {
    # Prints the CPU limit rounded up, or nothing when there is none.
    if [ -r "$CPU_MAX_FILE" ]; then
        read -r quota period < "$CPU_MAX_FILE" || true
    elif [ -r "$CFS_DIR/cpu.cfs_quota_us" ] && [ -r "$CFS_DIR/cpu.cfs_period_us" ]; then
        quota=$(cat "$CFS_DIR/cpu.cfs_quota_us")
        period=$(cat "$CFS_DIR/cpu.cfs_period_us")
    else
        return 0
    fi
    case "${quota:-max}" in max | -1 | "") return 0 ;; esac
    case "${period:-0}" in 0 | *[!0-9]*) return 0 ;; esac
    case "$quota" in *[!0-9]*) return 0 ;; esac
    echo $(((quota + period - 1) / period))
}

workers() {
    limit=$(cpu_limit)
    if [ -z "$limit" ]; then
        limit=$(nproc 2>/dev/null || echo 1)
    fi
    [ "$limit" -ge 1 ] 2>/dev/null || limit=1
    echo "$limit"
}

if [ "$#" -gt 0 ] && [ "$1" = serve ]; then
    shift
elif [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec bff "$@"  # another command: services, check-config, schema, usage, persist
fi

for arg in "$@"; do
    case "$arg" in --workers | --workers=*) exec bff serve "$@" ;; esac
done
if [ -n "${BFF_SERVER__WORKERS:-}" ]; then
    exec bff serve "$@"
fi
exec bff serve --workers "$(workers)" "$@"
