#!/usr/bin/env bash
# Runs every ipipd test: installs what they need (Debian packages, scapy), builds, runs `swift test`.
# As root, the integration tests build real network namespaces; they use documentation addresses only
# and remove what they create. Usage: scripts/test.sh [extra `swift test` arguments, e.g. --filter Config]
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;; esac

if [[ $(id -u) -ne 0 ]]; then
    echo "note: not root: the integration tests (namespaces, TUN, raw sockets) will be skipped" >&2
else
    scripts/install-deps.sh
fi

# Remove what a crashed earlier run may have left: namespaces named ipt* (processes inside by PID).
sweep() {
    [[ $(id -u) -eq 0 ]] || return 0
    for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^ipt/ {print $1}'); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns delete "$ns" 2>/dev/null || true
    done
}
sweep
trap sweep EXIT

swift build --build-tests
swift test --no-parallel "$@"
