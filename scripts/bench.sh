#!/usr/bin/env bash
# The benchmark of issue 6: ipipd (release build) next to direct routing, OpenVPN 2.6 (no cipher, no
# auth, user space) and tinc 1.0 (Cipher/Digest none), each on a fresh namespace topology, with ratios
# within the run. Root; installs what it needs; not part of CI.
#
# Usage: scripts/bench.sh [--duration S] [--soak S] [--runs N] [--only NAME ...] [--json FILE] [--baseline BINARY]
#                         [--gro on|off] [--latency [--latency-pings N] [--latency-syscalls]]
#   --latency: instead of the comparison, where a ping's round trip goes, stage by stage, for ipipd,
#   OpenVPN and tinc (or --only), from kernel tracepoints that perf records on every CPU;
#   --latency-syscalls splits each stage a tunnel's thread does itself into its system calls.
set -euo pipefail
cd "$(dirname "$0")/.."
# --help before anything is installed or built (bench.py's own help lists every option).
case ${1:-} in -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exec python3 scripts/bench.py --ipipd ipipd --help ;; esac
[[ $(id -u) -eq 0 ]] || { echo "bench.sh needs root (network namespaces)" >&2; exit 1; }
scripts/install-deps.sh
missing=()
for package in iperf3 openvpn tinc ethtool linux-perf; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
swift build -c release --product ipipd
exec python3 scripts/bench.py --ipipd "$(swift build -c release --show-bin-path)/ipipd" "$@"
