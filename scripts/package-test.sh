#!/usr/bin/env bash
# The Debian package on a gateway box without Swift: a clean Debian 12 root made with debootstrap
# (minbase, from Debian's mirror), the package installed into it with apt (which pulls its
# dependencies), and checked there — the binary loads only Debian's libraries, check/plan/version
# run, the user, unit, manuals and conffile are in place; then the seed scenario's machine B is
# deployed from that root alone, as the README's "Deploy on a gateway box" says, with machine A also
# the packaged binary, and host C pings the ghost host through the tunnel; then an upgrade keeps an
# edited conffile, remove keeps it, purge removes it and the state. Root; network namespaces and
# documentation addresses only; everything it creates is removed, also when it fails.
#
# Usage: scripts/package-test.sh [--deb FILE]
#   --deb FILE   the package to test (default: one built with scripts/package.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

deb=""
while (($#)); do
    case $1 in
        --deb) deb=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "package-test.sh needs root (debootstrap, chroot, namespaces)" >&2; exit 1; }
dpkg-query -W -f='${Status}' debootstrap 2>/dev/null | grep -q "install ok installed" \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null

LAB_PREFIX=iptpkg
source scripts/lib/lab.sh
work=$(mktemp -d /tmp/ipipd-package-test.XXXXXX)
root=$work/root
finish() {
    local status=$?
    trap '' INT TERM
    lab_down
    rm -rf "$work"
    [[ $status -eq 0 ]] || echo "package test FAILED at: $current" >&2
    exit $status
}
trap finish EXIT
trap 'exit 130' INT TERM
current=setup
step() { current=$1; printf '== %s\n' "$1"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# A command inside the root, with /proc, /sys and /dev of the caller's namespaces mounted in a private
# mount namespace of its own (nothing is mounted outside it).
# (Swift's runtime reads a static binary's arguments from /proc/self/cmdline: without /proc, ipipd
# sees none.)
enter_root='root=$1; shift
    mount -t proc proc "$root/proc" && mount --rbind /sys "$root/sys" && mount --rbind /dev "$root/dev"
    exec chroot "$root" "$@"'
in_root() {
    unshare -m --propagation private sh -c "$enter_root" sh "$root" "$@"
}
on() {  # on MACHINE COMMAND...: in_root, in the machine's network namespace (each step execs: one PID)
    local machine=$1; shift
    ip netns exec "$(ns "$machine")" unshare -m --propagation private sh -c "$enter_root" sh "$root" "$@"
}

if [[ -z $deb ]]; then
    step "build the package"
    deb=$(scripts/package.sh --output "$work")
fi
echo "package: $deb"

step "a clean Debian 12 root (debootstrap, minbase)"
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
cp /etc/resolv.conf "$root/etc/resolv.conf"
[[ ! -e $root/opt/swift && -z $(find "$root/usr/lib" -name 'libswiftCore*' -print -quit) ]] || fail "the root has Swift"

step "apt install ./$(basename "$deb") (no Swift in the root)"
cp "$deb" "$root/tmp/"
in_root sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/$(basename "$deb")" >"$work/apt.log" 2>&1 \
    || { tail -20 "$work/apt.log" >&2; fail "apt install"; }

step "the binary loads only Debian's libraries"
libraries=$(in_root ldd /usr/sbin/ipipd)
echo "$libraries" | sed 's/^/   /'
! grep -qi "swift\|not found" <<<"$libraries" || fail "ldd: $libraries"
in_root sh -c '! find / -xdev -name "libswiftCore*" 2>/dev/null | grep -q .' || fail "Swift libraries in the root"

step "ipipd version, check and plan run there"
grep -q "^ipipd [0-9]" <<<"$(in_root /usr/sbin/ipipd version)" || fail "ipipd version"
in_root /usr/sbin/ipipd check -q -c /etc/ipipd/ipipd.yaml || fail "check of the installed config"
in_root /usr/sbin/ipipd check -q -c /usr/share/doc/ipipd/examples/machine-b.yaml || fail "check of machine B's example"
plan=$(in_root /usr/sbin/ipipd plan -c /usr/share/doc/ipipd/examples/machine-b.yaml || true)
grep -q "create TUN device tunl" <<<"$plan" || fail "plan: $plan"

step "user, unit, manuals, conffile"
in_root getent passwd ipipd >/dev/null || fail "no ipipd user"
for file in /lib/systemd/system/ipipd.service /usr/share/man/man8/ipipd.8.gz /usr/share/man/man5/ipipd.yaml.5.gz \
            /usr/share/doc/ipipd/copyright /usr/share/doc/ipipd/examples/machine-b.yaml; do
    [[ -f $root$file ]] || fail "missing $file"
done
grep -q "^ExecStart=/usr/sbin/ipipd run -c /etc/ipipd/ipipd.yaml" "$root/lib/systemd/system/ipipd.service" || fail "the unit's paths"
grep -q "/etc/ipipd/ipipd.yaml" <<<"$(in_root dpkg-query -W -f='${Conffiles}\n' ipipd)" || fail "the config is no conffile"

step "deploy machine B from the package (README: Deploy on a gateway box), A also the packaged binary"
lab_up
in_root cp /usr/share/doc/ipipd/examples/machine-b.yaml /etc/ipipd/ipipd.yaml
mkdir -p "$root/run/ipipd-a" "$root/run/ipipd"
start() {   # start MACHINE CONFIG RUNTIME_DIR: ipipd of the root, in the machine's namespace
    on "$1" /usr/sbin/ipipd run -c "$2" --runtime-dir "$3" >"$work/$1.log" 2>&1 &
    LAB_PIDS+=($!)
    for _ in $(seq 100); do grep -q "tunnel up" "$work/$1.log" && return 0; sleep 0.1; done
    cat "$work/$1.log" >&2
    fail "ipipd on $1 did not come up"
}
start a /usr/share/doc/ipipd/examples/machine-a.yaml /run/ipipd-a
on b /usr/sbin/ipipd plan -c /etc/ipipd/ipipd.yaml >/dev/null || fail "plan on machine B"
start b /etc/ipipd/ipipd.yaml /run/ipipd
in_ns c ping -c 3 -i 0.3 -W 2 203.0.113.87 || fail "C cannot reach the ghost host"
grep -q "step" "$work/b.log" || fail "no steps logged by B"
status=$(on b /usr/sbin/ipipd status -c /etc/ipipd/ipipd.yaml) || fail "ipipd status on B"
grep -q "^ *machine-a .*198.51.100.37" <<<"$status" || fail "ipipd status on B: $status"
lab_down

step "an upgrade keeps the edited conffile"
echo "# edited on this box" >> "$root/etc/ipipd/ipipd.yaml"
upgrade=$work/upgrade
mkdir -p "$upgrade"
dpkg-deb -R "$deb" "$upgrade/tree"
version=$(sed -n 's/^Version: //p' "$upgrade/tree/DEBIAN/control")
sed -i "s/^Version: .*/Version: $version+upgrade1/" "$upgrade/tree/DEBIAN/control"
dpkg-deb --root-owner-group --build "$upgrade/tree" "$root/tmp/ipipd-upgrade.deb" >/dev/null
in_root sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/ipipd-upgrade.deb" >"$work/upgrade.log" 2>&1 \
    || { tail -20 "$work/upgrade.log" >&2; fail "apt install of the upgrade"; }
[[ $(in_root dpkg-query -W -f='${Version}' ipipd) == "$version+upgrade1" ]] || fail "the upgrade is not installed"
grep -q "^# edited on this box" "$root/etc/ipipd/ipipd.yaml" || fail "the upgrade replaced the edited config"

step "remove keeps the config; purge removes it and the state"
mkdir -p "$root/run/ipipd"; touch "$root/run/ipipd/tunl.state"
in_root sh -c "DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq ipipd" >/dev/null 2>&1 || fail "apt remove"
[[ ! -e $root/usr/sbin/ipipd && -f $root/etc/ipipd/ipipd.yaml ]] || fail "remove"
in_root sh -c "DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq ipipd" >/dev/null 2>&1 || fail "apt purge"
[[ ! -e $root/etc/ipipd && ! -e $root/run/ipipd ]] || fail "purge left /etc/ipipd or /run/ipipd"

current=done
echo "== the package installs, runs and deploys machine B where no Swift exists"
