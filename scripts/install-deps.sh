#!/usr/bin/env bash
# Installs what building and testing ipipd needs on Debian: the C libraries it links (libpcap, libnet 1.1),
# the tools its tests drive (iproute2, ping, arping, tcpdump, tshark, nc, keepalived for the HA pair, ethtool
# to make veths receive like NICs), the package's tools (dpkg-dev, lintian; debootstrap and systemd-nspawn
# for the clean Debian root it is tested in) and scapy for crafted packets.
set -euo pipefail
case ${1:-} in -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;; esac

packages=(libpcap-dev libnet1-dev pkg-config iproute2 iputils-ping iputils-arping tcpdump tshark
          netcat-openbsd util-linux procps curl nftables keepalived ethtool
          dpkg-dev lintian debootstrap systemd-container)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# scapy builds the packets the tests send that ipipd did not write (pinned for reproducible fixtures).
SCAPY_VERSION=2.6.1
if ! python3 -c "import scapy, sys; sys.exit(scapy.__version__ != '$SCAPY_VERSION')" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "scapy==$SCAPY_VERSION" 2>&1 | grep -v "Running pip as the 'root' user" || true
fi
