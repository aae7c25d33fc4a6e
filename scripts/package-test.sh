#!/usr/bin/env bash
# The Debian package on a gateway box without Swift: a clean Debian 12 root made with debootstrap
# (minbase and systemd, from Debian's mirror), the package installed into it with apt (which pulls its
# dependencies), and checked there — the binary loads only Debian's libraries, check/plan/version
# run, the user, unit, manuals and conffile are in place. Then that root boots with systemd
# (systemd-nspawn) as the seed scenario's machine B, in B's network namespace of the lab, and B is
# deployed as the README's "Deploy on a gateway box" says: `systemctl enable --now ipipd`, host C
# pings the ghost host through the tunnel (machine A is the packaged binary too), the journal holds
# ipipd's events with their priorities and fields, a broken config's reload is refused and shown by
# `journalctl -p warning`; an upgrade restarts the unit and keeps an edited conffile, remove stops it
# (tunl goes), purge removes the config and the state. Root; network namespaces and documentation
# addresses only; everything it creates is removed, also when it fails.
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
for tool in debootstrap systemd-container; do
    dpkg-query -W -f='${Status}' "$tool" 2>/dev/null | grep -q "install ok installed" \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >/dev/null
done

LAB_PREFIX=iptpkg
source scripts/lib/lab.sh
work=$(mktemp -d /tmp/ipipd-package-test.XXXXXX)
root=$work/root
finish() {
    local status=$?
    trap '' INT TERM
    stop_container
    lab_down
    rm -rf "$work"
    [[ $status -eq 0 ]] || echo "package test FAILED at: $current" >&2
    exit $status
}
container_pid=""
# nspawn turns SIGTERM into a shutdown of the container's systemd; bounded, then killed.
stop_container() {
    [[ -n $container_pid ]] || return 0
    kill -TERM "$container_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$container_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$container_pid" 2>/dev/null || true
    wait "$container_pid" 2>/dev/null || true
    container_pid=""
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

step "a clean Debian 12 root with systemd (debootstrap, minbase)"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
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

step "boot the root with systemd as machine B (systemd-nspawn in B's network namespace)"
lab_up
# CAP_NET_ADMIN and CAP_BPF are what the unit keeps; nspawn drops them from its containers unless told.
systemd-nspawn --quiet --directory="$root" --boot --register=no --keep-unit \
    --network-namespace-path="/run/netns/$(ns b)" --bind=/dev/net/tun --capability=CAP_NET_ADMIN,CAP_BPF \
    >"$work/container.log" 2>&1 </dev/null &
container_pid=$!
box=""   # the container's systemd (PID 1 inside), whose namespaces `on_box` enters
for _ in $(seq 100); do
    box=$(ps -o pid=,comm= --ppid "$container_pid" | awk '$2 == "systemd" { print $1 }' || true)
    [[ -n $box ]] && break
    sleep 0.1
done
[[ -n $box ]] || { tail -20 "$work/container.log" >&2; fail "the container did not start systemd"; }
on_box() { nsenter -t "$box" -a "$@"; }
state=""   # until its bus is up, systemctl cannot ask; then initializing, starting, and running (or not)
for _ in $(seq 600); do
    state=$(on_box systemctl is-system-running 2>/dev/null || true)
    [[ $state == "" || $state == initializing || $state == starting ]] || break
    sleep 0.1
done
[[ $state == running ]] || { on_box systemctl --failed --no-pager >&2; fail "systemd in the container is $state"; }

step "deploy machine B from the package as the README says, A also the packaged binary"
mkdir -p "$root/run/ipipd-a"
on a /usr/sbin/ipipd run -c /usr/share/doc/ipipd/examples/machine-a.yaml --runtime-dir /run/ipipd-a >"$work/a.log" 2>&1 &
LAB_PIDS+=($!)
for _ in $(seq 100); do grep -qs "tunnel up" "$work/a.log" && break; sleep 0.1; done
grep -q "tunnel up" "$work/a.log" || { cat "$work/a.log" >&2; fail "ipipd on A did not come up"; }
on_box cp /usr/share/doc/ipipd/examples/machine-b.yaml /etc/ipipd/ipipd.yaml
on_box ipipd check -c /etc/ipipd/ipipd.yaml >/dev/null || fail "check on B"
on_box ipipd plan -c /etc/ipipd/ipipd.yaml >/dev/null || fail "plan on B"
on_box systemctl enable --now ipipd >"$work/enable.log" 2>&1 \
    || { cat "$work/enable.log" >&2; on_box journalctl -u ipipd --no-pager >&2; fail "systemctl enable --now ipipd"; }
[[ $(on_box systemctl is-active ipipd) == active ]] || fail "the unit is not active"
[[ $(on_box systemctl is-enabled ipipd) == enabled ]] || fail "the unit is not enabled"
in_ns c ping -c 3 -i 0.3 -W 2 203.0.113.87 || fail "C cannot reach the ghost host"
status=$(on_box ipipd status) || fail "ipipd status on B"
grep -q "^ *machine-a .*198.51.100.37" <<<"$status" || fail "ipipd status on B: $status"

step "the journal has ipipd's events with their priorities and fields"
journal=$(on_box journalctl -u ipipd -o verbose --no-pager)
grep -q "MESSAGE=tunnel up" <<<"$journal" || fail "no 'tunnel up' in the journal"
grep -q "PRIORITY=6" <<<"$journal" || fail "no info priority in the journal"
grep -q "^ *DEVICE=tunl$" <<<"$journal" || fail "no DEVICE= field in the journal: $journal"
echo "peers: [" > "$work/broken.yaml"
cp "$root/etc/ipipd/ipipd.yaml" "$work/good.yaml"
cp "$work/broken.yaml" "$root/etc/ipipd/ipipd.yaml"
! on_box systemctl reload ipipd >/dev/null 2>&1 || fail "reload of a broken config succeeded"
[[ $(on_box systemctl is-active ipipd) == active ]] || fail "a refused reload stopped the unit"
warnings=$(on_box journalctl -u ipipd -p warning --no-pager -o cat)
grep -q "^/etc/ipipd/ipipd.yaml:2:1: error: YAML syntax" <<<"$warnings" || fail "journalctl -p warning lacks the config error: $warnings"
! grep -q "tunnel up" <<<"$warnings" || fail "journalctl -p warning shows info lines"
cp "$work/good.yaml" "$root/etc/ipipd/ipipd.yaml"
on_box systemctl reload ipipd || fail "reload of the good config"

step "an upgrade restarts the unit and keeps the edited conffile"
echo "# edited on this box" >> "$root/etc/ipipd/ipipd.yaml"
before=$(on_box systemctl show -p MainPID --value ipipd)
upgrade=$work/upgrade
mkdir -p "$upgrade"
dpkg-deb -R "$deb" "$upgrade/tree"
version=$(sed -n 's/^Version: //p' "$upgrade/tree/DEBIAN/control")
sed -i "s/^Version: .*/Version: $version+upgrade1/" "$upgrade/tree/DEBIAN/control"
dpkg-deb --root-owner-group --build "$upgrade/tree" "$root/root/ipipd-upgrade.deb" >/dev/null
on_box env DEBIAN_FRONTEND=noninteractive dpkg -i /root/ipipd-upgrade.deb >"$work/upgrade.log" 2>&1 \
    || { tail -20 "$work/upgrade.log" >&2; fail "dpkg -i of the upgrade"; }
[[ $(on_box dpkg-query -W -f='${Version}' ipipd) == "$version+upgrade1" ]] || fail "the upgrade is not installed"
grep -q "^# edited on this box" "$root/etc/ipipd/ipipd.yaml" || fail "the upgrade replaced the edited config"
after=$(on_box systemctl show -p MainPID --value ipipd)
[[ $(on_box systemctl is-active ipipd) == active && $after != "$before" && $after != 0 ]] \
    || fail "the upgrade did not restart the unit (MainPID $before -> $after)"
in_ns c ping -c 2 -i 0.3 -W 2 203.0.113.87 || fail "C cannot reach the ghost host after the upgrade"

step "remove stops the unit (tunl goes) and keeps the config; purge removes it and the state"
on_box env DEBIAN_FRONTEND=noninteractive dpkg --remove ipipd >/dev/null 2>&1 || fail "dpkg --remove"
[[ $(on_box systemctl is-active ipipd) != active ]] || fail "the unit still runs after remove"
! in_ns b ip link show tunl >/dev/null 2>&1 || fail "tunl is still there after remove"
[[ ! -e $root/usr/sbin/ipipd && -f $root/etc/ipipd/ipipd.yaml ]] || fail "remove"
on_box env DEBIAN_FRONTEND=noninteractive dpkg --purge ipipd >/dev/null 2>&1 || fail "dpkg --purge"
[[ ! -e $root/etc/ipipd ]] || fail "purge left /etc/ipipd"
! on_box test -e /run/ipipd || fail "purge left /run/ipipd"

current=done
echo "== the package installs, runs and deploys machine B where no Swift exists"
