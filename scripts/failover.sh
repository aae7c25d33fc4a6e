#!/usr/bin/env bash
# The HA pair's failover test (issue 16): the seed's scenario with machine B as two boxes, B1 and B2, that
# run keepalived (config/keepalived-b1.conf, keepalived-b2.conf) for B's address 203.0.113.86 and ipipd with
# config/ha-pair-b.yaml, which follows that address (uplink.standby-when-absent):
#
#   A (198.51.100.37) ── R ── LAN switch 203.0.113.0/24 ─┬─ B1 (203.0.113.81, keepalived priority 254)
#                                                        ├─ B2 (203.0.113.82, keepalived priority 253)
#                                                        └─ C  (203.0.113.20)
#
# Host C pings A's ghost address 203.0.113.87 at 20/s while it sends A a paced TCP transfer through the
# tunnel; then B1 dies as a box dies: keepalived and ipipd get SIGKILL and its link goes down. B2 takes
# over; the script measures the pings lost, the longest silence, and whether the transfer arrives whole
# (SHA-256). Before that, while the pings and the transfer run, C forges VRRP advertisements with
# priority 255 for VRID 86 (from its own address, and as B2 to B1) for 5 s: B1 must stay the master
# with no ping lost (the pair speaks unicast and authenticates with AH). Then B1 comes back (link up, ipipd and keepalived started) and takes the address back, with
# pings measured again. Everything in network namespaces on documentation addresses; everything it
# starts ends, also when it fails.
#
# Usage: scripts/failover.sh [--binary FILE] [--json FILE] [--logs DIR] [--gro on|off]
#   --binary FILE  the ipipd to test (default: a release build of this tree)
#   --json FILE    also write the figures as JSON
#   --logs DIR     keep the logs of ipipd, keepalived and ping there
#   --gro on|off   the uplinks receive like real NICs, GRO on (the default), or as bare veths
# Exit status 0 when B2 took over and B1 took back, the LAN's caches followed, the transfer's SHA-256
# matched, and the pings' longest silence stayed under 5 s at the failover (VRRP alone allows up to 3 s
# and B2's skew) and under 3 s at the failback; 1 otherwise. The figures say whether the failover's
# silence stayed under 3 s (the target).
set -euo pipefail
cd "$(dirname "$0")/.."

binary="" json="" logs=""
while (($#)); do
    case $1 in
        --binary) binary=$2; shift 2 ;;
        --gro) [[ ${2:-} == on || ${2:-} == off ]] || { echo "--gro takes on or off" >&2; exit 64; }; LAB_GRO=$2; shift 2 ;;
        --json) json=$2; shift 2 ;;
        --logs) logs=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "failover.sh needs root (network namespaces)" >&2; exit 1; }

if [[ -z $binary ]]; then
    source scripts/lib/release-build.sh
    binary=$(release_binary)
fi
binary=$(realpath "$binary")   # keepalived runs it from its own working directory
command -v keepalived >/dev/null || { echo "keepalived is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }

LAB_PREFIX=${LAB_PREFIX:-iptfo}
LAB_B_ADDRESS=203.0.113.81
source scripts/lib/lab.sh
LAB_NAMESPACES+=(b2)
WORK=$(mktemp -d /tmp/ipipd-failover.XXXXXX)
# Each B box runs ipipd with a copy of config/ha-pair-b.yaml of its own (the reload storm edits B1's).
for machine in b b2; do cp config/ha-pair-b.yaml "$WORK/ha-pair-$machine.yaml"; done
finish() {
    local status=$?
    trap '' INT TERM
    lab_down
    if [[ -n $logs ]]; then mkdir -p "$logs" && cp "$WORK"/*.log "$logs"/; fi
    if [[ $status -ne 0 ]]; then
        for log in "$WORK"/*.log; do [[ -s $log ]] && { echo "--- last lines of $(basename "$log")" >&2; tail -n 25 "$log" >&2; }; done
    fi
    rm -rf "$WORK"
    exit $status
}
trap finish EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
# The role of the ipipd in namespace $1 (b or b2) and when it took it, in epoch seconds: "active 1796...".
role_of() {
    local asked_at
    asked_at=$(now)
    timeout 2 "$binary" status --json -c "$WORK/ha-pair-$1.yaml" --runtime-dir "$WORK/run-$1" 2>/dev/null \
        | python3 -c 'import json,sys; r=json.load(sys.stdin)["role"]; print(r["role"], round(float(sys.argv[1]) - r["seconds"], 3))' \
            "$asked_at" 2>/dev/null || echo none 0
}
# Waits up to $3 seconds for the ipipd in $1 to have role $2; prints when it took it (epoch seconds).
wait_for_role() {
    local role since
    for _ in $(seq $(($3 * 10))); do
        read -r role since < <(role_of "$1")
        if [[ $role == "$2" ]]; then echo "$since"; return 0; fi
        sleep 0.1
    done
    echo "ipipd on $1 did not become $2 within $3 s" >&2
    return 1
}
# namespace config → PID (each start logs to a file of its own)
start_ipipd() { lab_start_ipipd "$binary" "$1" "$2" "$WORK/run-$1" "$WORK/ipipd-$1-$(date +%s%N).log"; }
# The box's shipped keepalived file, with its health check pointed at the lab's binary, config copy and
# runtime directory (and without enable_script_security, which refuses a binary under a path that
# someone other than root may write, as a build tree may be).
lab_keepalived_conf() {   # box (1 or 2) → the copy's path
    local box=$1 machine
    machine=$([[ $box == 1 ]] && echo b || echo b2)
    sed -e "s|/usr/sbin/ipipd |$binary |" \
        -e "s|-c /etc/ipipd/ipipd.yaml|-c $WORK/ha-pair-$machine.yaml --runtime-dir $WORK/run-$machine|" \
        -e '/enable_script_security/d' "config/keepalived-b$box.conf" >"$WORK/keepalived-b$box.conf"
    grep -q "script \"$binary status --check .*--runtime-dir $WORK/run-$machine" "$WORK/keepalived-b$box.conf" \
        || { echo "config/keepalived-b$box.conf has no ipipd health check to point at the lab" >&2; return 1; }
    echo "$WORK/keepalived-b$box.conf"
}
start_keepalived() {   # box (1 or 2) → PID of keepalived's parent (its VRRP child lives in the same namespace)
    local box=$1 machine conf
    machine=$([[ $box == 1 ]] && echo b || echo b2)
    conf=$(lab_keepalived_conf "$box")
    ip netns exec "$(ns "$machine")" keepalived --dont-fork --log-console --log-detail --vrrp \
        --use-file "$conf" --pid "$WORK/keepalived-b$box.pid" --vrrp_pid "$WORK/vrrp-b$box.pid" \
        >>"$WORK/keepalived-b$box.log" 2>&1 &
    echo $!
}
# From a `ping -D -O` log, what happened between epoch seconds $2 and $3 → "sent lost longest-silence-seconds":
# sent counts every icmp_seq seen (answered, or "no answer yet"); the silence is the longest time between
# two replies (or a bound and a reply).
ping_figures() {
    python3 - "$1" "$2" "$3" <<'PY'
import re, sys
path, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
lines = [(float(t), int(s), "ttl=" in line)
         for line in open(path) for t, s in re.findall(r"\[(\d+\.\d+)\] .*icmp_seq=(\d+)", line)]
inside = [(t, s, answered) for t, s, answered in lines if start <= t <= end]
seqs = [s for _, s, _ in inside]
replies = [t for t, _, answered in inside if answered]
sent = len(set(seqs))
lost = sent - len({s for _, s, answered in inside if answered})
times = [start] + replies + [end]
print(sent, lost, round(max(b - a for a, b in zip(times, times[1:])), 2))
PY
}
mac_of() { ip -n "$(ns "$1")" -o link show eth0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2; }
c_maps_ghost_to() { ip -n "$(ns c)" neigh show 203.0.113.87 | grep -q "$1" && echo true || echo false; }

# start_transfer MIB MIB_PER_S: C sends A that many random MiB over TCP through the tunnel, paced so
# that the transfer spans what happens meanwhile; finish_transfer waits for it and sets transfer_ok to
# whether the SHA-256 of what A received matches (true/false).
cat >"$WORK/send.py" <<'PY'
import socket, sys, time
data = open(sys.argv[1], "rb").read()
rate = float(sys.argv[2]) * (1 << 20)
sock = socket.create_connection(("203.0.113.87", 5001), timeout=40)
start, chunk = time.monotonic(), 65536
for offset in range(0, len(data), chunk):
    delay = start + offset / rate - time.monotonic()   # paced: the transfer spans the failover
    if delay > 0: time.sleep(delay)
    sock.sendall(data[offset:offset + chunk])
sock.shutdown(socket.SHUT_WR)
sock.recv(1)
print(f"sent {len(data)} bytes in {time.monotonic() - start:.2f} s")
PY
start_transfer() {
    local size=$1 rate=$2 limit=$(($1 / $2 + 40))
    head -c $((size << 20)) /dev/urandom >"$WORK/payload"
    rm -f "$WORK/received"
    ip netns exec "$(ns a)" timeout "$limit" sh -c "nc.openbsd -l 5001 > '$WORK/received'" &
    receiver_pid=$!; LAB_PIDS+=("$receiver_pid")
    for _ in $(seq 50); do in_ns a ss -Hltn 'sport = :5001' | grep -q 5001 && break; sleep 0.1; done
    ip netns exec "$(ns c)" timeout "$limit" python3 "$WORK/send.py" "$WORK/payload" "$rate" >"$WORK/sender.log" 2>&1 &
    sender_pid=$!; LAB_PIDS+=("$sender_pid")
}
finish_transfer() {
    local sent_sum received_sum
    if wait "$sender_pid"; then cat "$WORK/sender.log"; fi
    for _ in $(seq 100); do kill -0 "$receiver_pid" 2>/dev/null || break; sleep 0.1; done
    sent_sum=$(sha256sum <"$WORK/payload" | cut -d' ' -f1)
    received_sum=$(sha256sum <"$WORK/received" | cut -d' ' -f1)
    transfer_ok=false
    [[ $sent_sum == "$received_sum" ]] && transfer_ok=true
    echo "SHA-256 matches: $transfer_ok ($(stat -c %s "$WORK/received") of $(stat -c %s "$WORK/payload") bytes)"
}

say "lab: A -- R -- LAN(B1, B2, C)"
lab_down
lab_up
ip netns add "$(ns b2)"; ip -n "$(ns b2)" link set lo up
lab_link b2 eth0 lan pb2
ip -n "$(ns lan)" link set pb2 master br0
lab_nic_like b2 eth0 lan pb2
ip -n "$(ns b2)" addr add 203.0.113.82/24 dev eth0
ip -n "$(ns b2)" route add default via 203.0.113.1

say "ipipd on A, B1 and B2 (both B boxes standby: nobody holds 203.0.113.86 yet)"
pid_a=$(start_ipipd a config/machine-a.yaml); LAB_PIDS+=("$pid_a")
pid_b1=$(start_ipipd b "$WORK/ha-pair-b.yaml"); LAB_PIDS+=("$pid_b1")
pid_b2=$(start_ipipd b2 "$WORK/ha-pair-b2.yaml"); LAB_PIDS+=("$pid_b2")
read -r role_b1 _ < <(role_of b); read -r role_b2 _ < <(role_of b2)
[[ $role_b1 == standby && $role_b2 == standby ]] || { echo "the B boxes did not start as standby ($role_b1, $role_b2)" >&2; exit 1; }

say "keepalived on B1 and B2: B1 becomes master and its ipipd active"
# B1 first, then B2, which then hears B1's advertisements and stays backup (two started at once may
# both become master for a moment, a startup race of VRRP's, not the failover measured here).
LAB_PIDS+=("$(start_keepalived 1)")
wait_for_role b active 15 >/dev/null
LAB_PIDS+=("$(start_keepalived 2)")
sleep 1
read -r role_b2 _ < <(role_of b2)
[[ $role_b2 == standby ]] || { echo "B2 is $role_b2 while B1 is the master" >&2; exit 1; }
in_ns c ping -c 3 -i 0.2 -W 2 203.0.113.87 >/dev/null || { echo "C cannot reach A's ghost through B1" >&2; exit 1; }
b1_mac=$(mac_of b); b2_mac=$(mac_of b2)
[[ $(c_maps_ghost_to "$b1_mac") == true ]] || { echo "C does not map the ghost to B1's MAC" >&2; exit 1; }
echo "C reaches A's ghost through B1 ($b1_mac)"

say "C pings the ghost at 20/s and sends A 16 MiB at 2 MiB/s through the tunnel"
ip netns exec "$(ns c)" stdbuf -oL ping -D -O -i 0.05 -W 1 -w 400 203.0.113.87 >"$WORK/ping.log" 2>&1 &
ping_pid=$!; LAB_PIDS+=("$ping_pid")
start_transfer 16 2
sleep 1

say "C forges VRRP advertisements for 5 s (priority 255, VRID 86: from itself, and as B2): B1 stays the master"
forged_at=$(now)
ip netns exec "$(ns c)" timeout 30 python3 - <<'PY' >"$WORK/forger.log" 2>&1 || true
import time
from scapy.all import IP, Ether, conf, sendp
from scapy.layers.vrrp import VRRP
conf.verb = 0
def advert(source, destination):
    return Ether() / IP(src=source, dst=destination, ttl=255) / VRRP(vrid=86, priority=255, ipcount=1,
                                                                   addrlist=["203.0.113.86"], adv=1)
frames = [advert("203.0.113.20", "224.0.0.18"), advert("203.0.113.82", "224.0.0.18"), advert("203.0.113.82", "203.0.113.81")]
for _ in range(5):
    sendp(frames, iface="eth0")
    time.sleep(1)
print("sent", 5 * len(frames), "forged advertisements")
PY
cat "$WORK/forger.log"
sleep 1
read -r role_b1 _ < <(role_of b); read -r role_b2 _ < <(role_of b2)
forged_kept_master=$([[ $role_b1 == active && $role_b2 == standby ]] && echo true || echo false)
read -r fg_sent fg_lost fg_gap < <(ping_figures "$WORK/ping.log" "$forged_at" "$(now)")
echo "B1 still the master: $forged_kept_master; pings meanwhile: $fg_sent sent, $fg_lost lost, longest silence $fg_gap s"

say "B1 dies: its link goes down, keepalived and ipipd get SIGKILL"
# The link first: a dying box sends nothing more (keepalived's VRRP child, told of its parent's death,
# would otherwise send a priority-0 advertisement on its way out and hand over at once).
killed_at=$(now)
ip -n "$(ns b)" link set eth0 down
for pid in $(ip netns pids "$(ns b)"); do kill -KILL "$pid" 2>/dev/null || true; done
b2_active_at=$(wait_for_role b2 active 15)
takeover=$(python3 -c "print(round($b2_active_at - $killed_at, 2))")
echo "B2 active $takeover s after the kill"
sleep 6
read -r fo_sent fo_lost fo_gap < <(ping_figures "$WORK/ping.log" "$killed_at" "$(now)")
echo "pings from the kill to 6 s after the takeover: $fo_sent sent, $fo_lost lost, longest silence $fo_gap s"
c_moved=$(c_maps_ghost_to "$b2_mac")
echo "C maps the ghost to B2's MAC: $c_moved"

say "the transfer ends"
finish_transfer
death_transfer_ok=$transfer_ok

say "B1 comes back (link up, ipipd, keepalived) and takes the address back"
# A box that rebooted holds no virtual address; the one keepalived left on the dead box's link goes.
ip -n "$(ns b)" addr del 203.0.113.86/24 dev eth0 2>/dev/null || true
ip -n "$(ns b)" link set eth0 up
ip -n "$(ns b)" route replace default via 203.0.113.1   # went with the link, as a reboot would restore it
pid_b1=$(start_ipipd b "$WORK/ha-pair-b.yaml"); LAB_PIDS+=("$pid_b1")
returned_at=$(now)
LAB_PIDS+=("$(start_keepalived 1)")
wait_for_role b active 15 >/dev/null
wait_for_role b2 standby 15 >/dev/null
sleep 4
read -r fb_sent fb_lost fb_gap < <(ping_figures "$WORK/ping.log" "$returned_at" "$(now)")
echo "pings from B1's return to 4 s after it took over: $fb_sent sent, $fb_lost lost, longest silence $fb_gap s"
c_back=$(c_maps_ghost_to "$b1_mac")
echo "C maps the ghost to B1's MAC again: $c_back"
role_changes() { "$binary" status --json -c "$WORK/ha-pair-$1.yaml" --runtime-dir "$WORK/run-$1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["role"]["changes"])'; }
b2_changes=$(role_changes b2)

# ipipd_failure NAME INJECT HEAL: while C pings and sends a 10 MiB transfer at 1 MiB/s, INJECT (a
# function) makes ipipd on the master B1 fail while keepalived there lives on; its health check must
# hand the address to B2 within 3 s of lost pings. HEAL (a function) makes B1 healthy again, and B1
# must take the address back with a silence no longer than the first. Adds the case's figures to
# $cases and clears $cases_passed when it fails.
cases="" cases_passed=true
ipipd_failure() {
    local name=$1 inject=$2 heal=$3 failed_at b2_at takeover sent lost gap healed_at back=true fb_sent fb_lost fb_gap ok
    say "ipipd on B1 fails ($name); B2 takes over; B1, healthy again, takes the address back"
    start_transfer 10 1
    sleep 1
    failed_at=$(now)
    "$inject"
    b2_at=$(wait_for_role b2 active 15) || b2_at=$(now)
    takeover=$(python3 -c "print(round($b2_at - $failed_at, 2))")
    sleep 3
    read -r sent lost gap < <(ping_figures "$WORK/ping.log" "$failed_at" "$(now)")
    echo "B2 active $takeover s after the failure; pings: $sent sent, $lost lost, longest silence $gap s"
    healed_at=$(now)
    "$heal"
    # B2 gives the address up only when B1, healthy for two checks (rise 2), preempts it.
    wait_for_role b2 standby 20 >/dev/null && wait_for_role b active 5 >/dev/null || back=false
    sleep 3
    read -r fb_sent fb_lost fb_gap < <(ping_figures "$WORK/ping.log" "$healed_at" "$(now)")
    echo "B1 back: $back; pings from the heal on: $fb_sent sent, $fb_lost lost, longest silence $fb_gap s"
    finish_transfer
    ok=$(python3 -c "print(str($gap < 3 and $fb_gap <= max($gap, 0.5) and $sent > 0 and $fb_sent > 0).lower())")
    $back && $transfer_ok && $ok || { ok=false; cases_passed=false; }
    cases+="${cases:+, }\"$name\": {\"takeover_seconds\": $takeover, \"pings_sent\": $sent, \"pings_lost\": $lost, \"longest_silence_seconds\": $gap,
   \"b1_took_back\": $back, \"failback_pings_lost\": $fb_lost, \"failback_longest_silence_seconds\": $fb_gap,
   \"transfer_sha256_matches\": $transfer_ok, \"passed\": $ok}"
}
restart_b1_ipipd() {
    kill -TERM "$pid_b1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid_b1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid_b1" 2>/dev/null || true
    wait "$pid_b1" 2>/dev/null || true
    pid_b1=$(start_ipipd b "$WORK/ha-pair-b.yaml"); LAB_PIDS+=("$pid_b1")
}
kill_b1_ipipd() { kill -KILL "$pid_b1"; }
stop_b1_ipipd() { kill -STOP "$pid_b1"; }
continue_b1_ipipd() { kill -CONT "$pid_b1"; }
delete_b1_tunnel() { ip -n "$(ns b)" link del tunl; }
ipipd_failure sigkill kill_b1_ipipd restart_b1_ipipd
ipipd_failure sigstop stop_b1_ipipd continue_b1_ipipd
ipipd_failure tun-device-deleted delete_b1_tunnel restart_b1_ipipd

say "a reload storm with an invalid file on B1 (must not fail over: the running config stays)"
b1_changes_before=$(role_changes b)
storm_at=$(now)
cp "$WORK/ha-pair-b.yaml" "$WORK/ha-pair-b.valid"
printf 'uplink:\n  interface: eth0\n  address: 203.0.113.300\n' >"$WORK/ha-pair-b.yaml"
checks_failed=0
for _ in $(seq 25); do   # 5 s: a SIGHUP every 0.2 s, the health check every 0.4 s
    kill -HUP "$pid_b1"; sleep 0.2; kill -HUP "$pid_b1"
    "$binary" status --check --timeout 0.5 -c "$WORK/ha-pair-b.valid" --runtime-dir "$WORK/run-b" 2>/dev/null || checks_failed=$((checks_failed + 1))
    sleep 0.2
done
cp "$WORK/ha-pair-b.valid" "$WORK/ha-pair-b.yaml"
sleep 2
read -r st_sent st_lost st_gap < <(ping_figures "$WORK/ping.log" "$storm_at" "$(now)")
b1_changes_after=$(role_changes b)
reloads_refused=$(cat "$WORK"/ipipd-b-*.log | grep -c "reload refused" || true)
read -r role_b1 _ < <(role_of b)
storm_kept=$([[ $role_b1 == active && $b1_changes_after == "$b1_changes_before" && $checks_failed == 0 && $st_lost == 0 && $reloads_refused -gt 0 ]] && echo true || echo false)
echo "B1 still the master with no role change: $storm_kept; reloads refused: $reloads_refused; health checks failed: $checks_failed of 25; pings: $st_sent sent, $st_lost lost"

say "split brain: B2 hears no VRRP from B1 for 8 s (nftables on B2), so both are masters; each ipipd must report it"
split_claims() { "$binary" status --json -c "$WORK/ha-pair-$1.yaml" --runtime-dir "$WORK/run-$1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["role"]["splitBrainClaims"])'; }
# Every switch-over so far was a clean one: no split-brain claim may have been counted.
sb_before_b1=$(split_claims b) sb_before_b2=$(split_claims b2)
ip netns exec "$(ns b2)" nft -f - <<'NFT'
table inet split_brain {
    chain input {
        type filter hook input priority -20; policy accept;
        ip protocol { 51, 112 } drop
    }
}
NFT
both_active=false
if wait_for_role b2 active 10 >/dev/null; then
    sleep 5
    read -r role_b1 _ < <(role_of b)
    [[ $role_b1 == active ]] && both_active=true
fi
sb_b1=$(split_claims b) sb_b2=$(split_claims b2)
ip netns exec "$(ns b2)" nft delete table inet split_brain
wait_for_role b2 standby 10 >/dev/null || true
sleep 2
read -r role_b1 _ < <(role_of b)
sb_logged=$(cat "$WORK"/ipipd-b-*.log "$WORK"/ipipd-b2-*.log | grep -c "split brain?" || true)
split_detected=$([[ $both_active == true && $sb_before_b1 == 0 && $sb_before_b2 == 0 && $sb_b1 -gt 0 && $sb_b2 -gt 0 \
    && $sb_logged -gt 0 && $role_b1 == active ]] && echo true || echo false)
echo "both active: $both_active; split-brain claims before: B1 $sb_before_b1, B2 $sb_before_b2; during: B1 $sb_b1, B2 $sb_b2; log lines: $sb_logged; B1 the only master again: $([[ $role_b1 == active ]] && echo true || echo false)"

passed=false
if $cases_passed && $storm_kept && $split_detected && $death_transfer_ok && $c_moved && $c_back && $forged_kept_master && ((fo_sent > 0 && fb_sent > 0 && fg_lost == 0)) \
   && python3 -c "import sys; sys.exit(0 if $fo_gap < 5 and $fb_gap < 3 else 1)"; then passed=true; fi
target_met=$(python3 -c "print(str($fo_gap < 3).lower())")
figures=$(cat <<EOF
{"forged_vrrp_kept_master": $forged_kept_master, "forged_vrrp_pings_sent": $fg_sent, "forged_vrrp_pings_lost": $fg_lost,
 "takeover_seconds": $takeover, "failover_pings_sent": $fo_sent, "failover_pings_lost": $fo_lost,
 "failover_longest_silence_seconds": $fo_gap, "under_3_seconds": $target_met, "lan_cache_moved_to_b2": $c_moved,
 "transfer_sha256_matches": $death_transfer_ok, "failback_pings_sent": $fb_sent, "failback_pings_lost": $fb_lost,
 "failback_longest_silence_seconds": $fb_gap, "lan_cache_back_to_b1": $c_back, "b2_role_changes": $b2_changes,
 "ipipd_failures": {$cases},
 "split_brain": {"detected": $split_detected, "both_active": $both_active, "claims_before_b1": $sb_before_b1, "claims_before_b2": $sb_before_b2,
   "claims_b1": $sb_b1, "claims_b2": $sb_b2, "log_lines": $sb_logged},
 "reload_storm": {"kept_master": $storm_kept, "reloads_refused": $reloads_refused, "health_checks_failed": $checks_failed, "pings_sent": $st_sent, "pings_lost": $st_lost},
 "passed": $passed}
EOF
)
say "figures"
echo "$figures"
if [[ -n $json ]]; then echo "$figures" >"$json"; fi
$passed
