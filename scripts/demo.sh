#!/usr/bin/env bash
# The seed's worked example, end to end, in network namespaces: machine A (198.51.100.37) appears on
# machine B's LAN as the ghost host 203.0.113.87, through an IP-in-IP tunnel run by ipipd on A and B.
#
# Usage: scripts/demo.sh [--keep]     (root; builds ipipd first)
#   --keep   leave the lab running afterwards and print how to explore and remove it
# Exit status 0 when every step worked; otherwise non-zero, naming the step that failed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/lab.sh

keep=no
for arg in "$@"; do
    case $arg in
        --keep) keep=yes ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 64 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "demo.sh needs root (network namespaces)" >&2; exit 1; }

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
current_step="setup"
step() { current_step=$1; bold "$1"; }
finish() {
    local status=$?
    if [[ $status -ne 0 ]]; then
        printf '\n\033[31mFAILED at step: %s\033[0m\n' "$current_step" >&2
    fi
    if [[ $keep == yes && $status -eq 0 ]]; then
        cat <<MSG

The lab is still running. Enter a machine with:
  ip netns exec $(ns a) bash      # machine A (ipipd log: $LOGDIR/a.log)
  ip netns exec $(ns b) bash      # machine B (ipipd log: $LOGDIR/b.log)
  ip netns exec $(ns c) bash      # host C on B's LAN
  ip netns exec $(ns r) bash      # the router between them
Remove it with:
  LAB_PREFIX=$LAB_PREFIX bash -c 'source scripts/lib/lab.sh; lab_down'
MSG
    else
        lab_down
    fi
    exit $status
}
trap finish EXIT
trap 'exit 130' INT TERM

LOGDIR=$(mktemp -d /tmp/ipipd-demo.XXXXXX)

step "build ipipd"
scripts/install-deps.sh
swift build -c release --product ipipd 2>&1 | tail -1
IPIPD=$(swift build -c release --show-bin-path)/ipipd

step "check both machines' config files"
"$IPIPD" check -q -c config/machine-a.yaml && echo "config/machine-a.yaml: valid"
"$IPIPD" check -q -c config/machine-b.yaml && echo "config/machine-b.yaml: valid"

step "build the lab: A -- R -- LAN(B, C)"
lab_down
lab_up
echo "namespaces: $(ip netns list | awk -v p="$LAB_PREFIX" '$1 ~ p {print $1}' | tr '\n' ' ')"

step "plan on machine A (as an unprivileged user: nothing is changed)"
in_ns a setpriv --reuid=65534 --regid=65534 --clear-groups "$IPIPD" plan -c config/machine-a.yaml

step "plan on machine B"
in_ns b setpriv --reuid=65534 --regid=65534 --clear-groups "$IPIPD" plan -c config/machine-b.yaml

bold "all steps passed"
