#!/usr/bin/env bash
# Hub scale measurements (issue 16): for hubs of 10, 1,000 and 10,000 peers with 10 prefixes each
# (scripts/hub-config.py: benchmark addresses only), how long `ipipd check` and `ipipd plan` take, how
# long `ipipd run` takes from its start to "tunnel up" with every route in the kernel, how long a reload
# that changes 1 % of the peers takes, how much memory the daemon holds, and what its threads cost per
# second while idle (periodic work must not grow with the peers), how long a metrics scrape of every
# peer's series takes (the median of 5) and how long a stop takes with a scrape under way. The hub's uplink is one end of a veth
# pair in a network namespace of its own; no packet is sent. Everything it starts ends, also when it fails.
#
# Usage: scripts/scale.sh [--peers "10 1000 10000"] [--binary FILE] [--json FILE]
#   --peers LIST   hub sizes to measure (default "10 1000 10000")
#   --binary FILE  the ipipd to measure (default: a release build of this tree)
#   --json FILE    also write the figures as JSON
# Exit status 0 when every hub came up with all its routes and took its reload; 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes="10 1000 10000" binary="" json=""
while (($#)); do
    case $1 in
        --peers) sizes=$2; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        --json) json=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "scale.sh needs root (network namespaces)" >&2; exit 1; }
if [[ -z $binary ]]; then
    source scripts/lib/release-build.sh
    binary=$(release_binary)
fi

NS=iptscale
WORK=$(mktemp -d /tmp/ipipd-scale.XXXXXX)
daemon=""
finish() {
    local status=$?
    trap '' INT TERM
    if [[ -n $daemon ]] && kill -0 "$daemon" 2>/dev/null; then
        kill -TERM "$daemon"; for _ in $(seq 50); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon" 2>/dev/null || true
    fi
    if ip netns list | grep -qw "$NS"; then
        for pid in $(ip netns pids "$NS"); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns delete "$NS"
    fi
    [[ $status -ne 0 ]] && for log in "$WORK"/*.log; do [[ -s $log ]] && { echo "--- $(basename "$log")" >&2; tail -n 20 "$log" >&2; }; done
    rm -rf "$WORK"
    exit $status
}
trap finish EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
elapsed() { python3 -c "print(round($2 - $1, 3))"; }
# Wall time of a command, in seconds (its output goes to $WORK/last.out).
timed() { local start; start=$(now); "$@" >"$WORK/last.out" 2>&1; elapsed "$start" "$(now)"; }
rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hwm_mib() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# CPU seconds each thread of $1 used: "name ticks" lines (utime + stime, in clock ticks).
thread_ticks() {
    local task
    for task in /proc/"$1"/task/*; do
        awk '{ sub(/^[0-9]+ \(/, ""); name = $0; sub(/\).*/, "", name); n = split($0, f, ") "); split(f[n], g, " "); print name, g[12] + g[13] }' "$task/stat"
    done
}

if ip netns list | grep -qw "$NS"; then
    for pid in $(ip netns pids "$NS"); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns delete "$NS"
fi
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add eth0 type veth peer name eth0-far   # both ends here: the uplink needs no one behind it
ip -n "$NS" addr add 198.19.255.254/16 dev eth0
ip -n "$NS" link set eth0-far up
ip -n "$NS" link set eth0 up

results=()
printf '%-7s %-8s %-7s %-7s %-9s %-13s %-12s %-8s %-9s %-22s %-8s %-9s %s\n' peers prefixes check-s plan-s startup-s reload-s/daemon rss-MiB/after peak-MiB idle-ms/s busiest-idle-thread scrape-s scrape-cpu stop-s
for peers in $sizes; do
    prefixes=$((peers * 10))
    scripts/hub-config.py "$peers" >"$WORK/hub.yaml"
    scripts/hub-config.py "$peers" --changed-percent 1 >"$WORK/hub-changed.yaml"
    printf '\nmetrics:\n  listen: 127.0.0.1:9473\n' | tee -a "$WORK/hub.yaml" >>"$WORK/hub-changed.yaml"
    config=$WORK/running.yaml
    cp "$WORK/hub.yaml" "$config"

    check=$(timed "$binary" check -c "$config")
    plan=$(timed ip netns exec "$NS" "$binary" plan -c "$config" --runtime-dir "$WORK/run")
    planned_routes=$(grep -c "dev tunl    # to peer" "$WORK/last.out" || true)

    mkdir -p "$WORK/run"
    started=$(now)
    ip netns exec "$NS" "$binary" run -c "$config" --runtime-dir "$WORK/run" >"$WORK/run-$peers.log" 2>&1 &
    daemon=$!
    up=""
    for _ in $(seq 1500); do
        if grep -q "tunnel up" "$WORK/run-$peers.log"; then up=$(now); break; fi
        kill -0 "$daemon" 2>/dev/null || break
        sleep 0.02
    done
    [[ -n $up ]] || { echo "ipipd did not come up with $peers peers" >&2; exit 1; }
    startup=$(elapsed "$started" "$up")
    routes=$(ip -n "$NS" route show dev tunl | wc -l)
    [[ $routes -eq $prefixes && $planned_routes -eq $prefixes ]] \
        || { echo "$peers peers: $routes routes in the kernel, $planned_routes planned, $prefixes configured" >&2; exit 1; }

    # Idle: what every thread costs per second with nothing to carry (periodic work only).
    sleep 2
    thread_ticks "$daemon" | sort >"$WORK/ticks-before"
    sleep 10
    thread_ticks "$daemon" | sort >"$WORK/ticks-after"
    hz=$(getconf CLK_TCK)
    read -r idle busiest < <(python3 - "$WORK/ticks-before" "$WORK/ticks-after" "$hz" <<'PY'
import sys
def read(path):
    totals = {}
    for line in open(path):
        name, ticks = line.rsplit(" ", 1)
        totals[name] = totals.get(name, 0) + int(ticks)
    return totals
before, after, hz = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3])
per_thread = {name: (after[name] - before.get(name, 0)) * 1000 / hz / 10 for name in after}
busiest = max(per_thread, key=per_thread.get)
print(round(sum(per_thread.values()), 1), f"{busiest}={per_thread[busiest]:.1f}")
PY
)
    rss=$(rss_mib "$daemon")

    # Metrics: 5 scrapes, each every peer's series; the median wall time, the series, the CPU per scrape.
    scrape_times=()
    cpu_before=$(thread_ticks "$daemon" | awk '{ total += $NF } END { print total }')
    for _ in 1 2 3 4 5; do
        scrape_times+=("$(ip netns exec "$NS" curl -sf -o "$WORK/metrics.txt" -w '%{time_total}' http://127.0.0.1:9473/metrics)")
    done
    cpu_after=$(thread_ticks "$daemon" | awk '{ total += $NF } END { print total }')
    scrape=$(printf '%s\n' "${scrape_times[@]}" | sort -n | sed -n 3p)
    scrape_cpu=$(python3 -c "print(round(($cpu_after - $cpu_before) / $(getconf CLK_TCK) / 5, 3))")
    series=$(grep -vc '^#' "$WORK/metrics.txt")
    grep -q "^ipipd_peer_packets_total{peer=\"site-$((peers - 1))\",direction=\"sent\"}" "$WORK/metrics.txt" \
        || { echo "$peers peers: the scrape lacks the last peer's series" >&2; exit 1; }

    cp "$WORK/hub-changed.yaml" "$config"
    reload=$(timed "$binary" reload -c "$config" --runtime-dir "$WORK/run")
    grep -q "reload refused" "$WORK/last.out" && { cat "$WORK/last.out" >&2; exit 1; }
    # What the daemon itself took (the command adds its own start and the printing).
    reload_daemon=$(grep " reloaded" "$WORK/run-$peers.log" | grep -o 'seconds=[0-9.]*' | tail -1 | cut -d= -f2 || true)
    reload_daemon=${reload_daemon:-null}   # an ipipd older than this script does not log it
    routes_after=$(ip -n "$NS" route show dev tunl | wc -l)
    moved=$(python3 -c "print(max(1, round($peers / 100)))")
    expected_after=$prefixes
    [[ $routes_after -eq $expected_after ]] || { echo "$peers peers: $routes_after routes after the reload, not $expected_after" >&2; exit 1; }
    # The first changed peer's new prefixes are in the kernel, its old ones gone.
    new_prefix=$(grep -A2 "name: site-0$" "$WORK/hub-changed.yaml" | grep -o '198\.18\.[0-9.]*/[0-9]*' | head -1)
    old_prefix=$(grep -A2 "name: site-0$" "$WORK/hub.yaml" | grep -o '198\.18\.[0-9.]*/[0-9]*' | head -1)
    ip -n "$NS" route show "$new_prefix" dev tunl | grep -q . || { echo "new prefix $new_prefix not in the kernel" >&2; exit 1; }
    ! ip -n "$NS" route show "$old_prefix" dev tunl | grep -q . || { echo "old prefix $old_prefix still in the kernel" >&2; exit 1; }
    sleep 1
    rss_after=$(rss_mib "$daemon")
    peak=$(hwm_mib "$daemon")

    # The stop comes while a scrape is under way: it must not wait for it.
    ip netns exec "$NS" curl -s -o /dev/null http://127.0.0.1:9473/metrics &
    scraper=$!
    sleep 0.01
    stop_started=$(now)
    kill -TERM "$daemon"
    wait "$daemon" || true
    stop=$(elapsed "$stop_started" "$(now)")
    daemon=""
    wait "$scraper" || true

    printf '%-7s %-8s %-7s %-7s %-9s %-13s %-12s %-8s %-9s %-22s %-8s %-9s %s\n' "$peers" "$prefixes" "$check" "$plan" "$startup" "$reload/$reload_daemon" \
        "$rss/$rss_after" "$peak" "$idle" "$busiest" "$scrape" "$scrape_cpu" "$stop"
    results+=("{\"peers\": $peers, \"prefixes\": $prefixes, \"check_seconds\": $check, \"plan_seconds\": $plan, \"startup_seconds\": $startup, \"reload_seconds\": $reload, \"reload_daemon_seconds\": $reload_daemon, \"peers_changed_by_reload\": $moved, \"rss_mib\": $rss, \"rss_after_reload_mib\": $rss_after, \"peak_rss_mib\": $peak, \"idle_cpu_ms_per_s\": $idle, \"busiest_idle_thread\": \"$busiest\", \"stop_seconds\": $stop, \"scrape_seconds\": $scrape, \"scrape_cpu_seconds\": $scrape_cpu, \"metrics_series\": $series}")
done
if [[ -n $json ]]; then
    (IFS=,; echo "[${results[*]}]") | python3 -m json.tool >"$json"
fi
