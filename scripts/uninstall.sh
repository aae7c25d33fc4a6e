#!/usr/bin/env bash
# Removes what scripts/install.sh installed. The config in /etc/ipipd/ stays unless --purge is given
# (which also removes the ipipd user).
#
# Usage: scripts/uninstall.sh [--prefix DIR] [--destdir DIR] [--purge]
set -euo pipefail

prefix=/usr/local destdir="" purge=no
while (($#)); do
    case $1 in
        --prefix) prefix=$2; shift 2 ;;
        --destdir) destdir=$2; shift 2 ;;
        --purge) purge=yes; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
[[ -n $destdir || $(id -u) -eq 0 ]] || { echo "uninstall.sh needs root (or --destdir)" >&2; exit 1; }

unit=$destdir/etc/systemd/system/ipipd.service
if [[ -z $destdir && -d /run/systemd/system ]]; then
    systemctl disable --now ipipd 2>/dev/null || true
fi
rm -f "$destdir$prefix/sbin/ipipd" "$destdir$prefix/share/man/man8/ipipd.8" "$unit" "$destdir/etc/ipipd/example-machine-b.yaml"
echo "removed $destdir$prefix/sbin/ipipd and $unit"
if [[ $purge == yes ]]; then
    rm -rf "$destdir/etc/ipipd"
    echo "removed $destdir/etc/ipipd"
    if [[ -z $destdir ]] && getent passwd ipipd >/dev/null; then userdel ipipd && echo "removed the user ipipd"; fi
else
    [[ -d $destdir/etc/ipipd ]] && echo "kept $destdir/etc/ipipd (remove it with --purge)"
fi
if [[ -z $destdir && -d /run/systemd/system ]]; then systemctl daemon-reload; fi
