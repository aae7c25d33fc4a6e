# shellcheck shell=bash
# The ipipd a script runs when not given one (--binary): the Debian packages and scapy installed, a
# release build of this tree made; prints its path. Sourced by torture.sh, failover.sh and scale.sh.
release_binary() {
    scripts/install-deps.sh >&2
    swift build -c release --product ipipd 2>&1 | tail -1 >&2
    echo "$(swift build -c release --show-bin-path)/ipipd"
}
