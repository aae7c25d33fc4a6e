#!/usr/bin/env bash
# Installs ipipd on a gateway box: the binary (release build), the systemd unit, an example config under
# /etc/ipipd/ (never overwriting an existing one) and the unprivileged `ipipd` system user.
#
# Usage: scripts/install.sh [--prefix DIR] [--destdir DIR] [--binary FILE]
#   --prefix DIR    where the binary goes: DIR/sbin/ipipd (default /usr/local)
#   --destdir DIR   stage everything under DIR instead of / (packaging, tests): no user, no systemctl
#   --binary FILE   install this ipipd binary instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local destdir="" binary=""
while (($#)); do
    case $1 in
        --prefix) prefix=$2; shift 2 ;;
        --destdir) destdir=$2; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
[[ -n $destdir || $(id -u) -eq 0 ]] || { echo "install.sh needs root (or --destdir)" >&2; exit 1; }

manual=""
if [[ -z $binary ]]; then
    scripts/install-deps.sh
    swift build -c release --product ipipd
    binary=$(swift build -c release --show-bin-path)/ipipd
    # ipipd(8), generated from the same text as `ipipd --help` (swift-argument-parser's plugin).
    swift package plugin generate-manual --section 8 --authors "the ipipd developers" >/dev/null
    manual=.build/plugins/GenerateManual/outputs/ipipd/ipipd.8
fi

sbindir=$prefix/sbin sysconfdir=/etc
install -d "$destdir$sbindir" "$destdir$sysconfdir/ipipd" "$destdir$sysconfdir/systemd/system"
install -m 0755 "$binary" "$destdir$sbindir/ipipd"
echo "installed $destdir$sbindir/ipipd"
if [[ -n $manual ]]; then
    install -D -m 0644 "$manual" "$destdir$prefix/share/man/man8/ipipd.8"
    echo "installed $destdir$prefix/share/man/man8/ipipd.8"
fi
sed -e "s|@SBINDIR@|$sbindir|g" -e "s|@SYSCONFDIR@|$sysconfdir|g" packaging/ipipd.service \
    > "$destdir$sysconfdir/systemd/system/ipipd.service"
chmod 0644 "$destdir$sysconfdir/systemd/system/ipipd.service"
echo "installed $destdir$sysconfdir/systemd/system/ipipd.service"

config=$destdir$sysconfdir/ipipd/ipipd.yaml
if [[ -e $config ]]; then
    echo "kept the existing $config"
else
    { echo "# ipipd configuration: edit for this gateway, then: ipipd check && systemctl reload ipipd"
      echo "# (this example is machine A of the seed's scenario; config/machine-b.yaml in the source shows B)"
      cat config/machine-a.yaml; } > "$config"
    chmod 0640 "$config"
    echo "installed the example config $config"
fi
install -m 0644 config/machine-b.yaml "$destdir$sysconfdir/ipipd/example-machine-b.yaml"

if [[ -z $destdir ]]; then
    if ! getent passwd ipipd >/dev/null; then
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ipipd
        echo "created the system user ipipd"
    fi
    chgrp ipipd "$config"   # the daemon re-reads it on reload after dropping root
    if [[ -d /run/systemd/system ]]; then
        systemctl daemon-reload
        echo "systemd reloaded; start with: systemctl enable --now ipipd"
    fi
fi
