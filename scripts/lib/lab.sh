# shellcheck shell=bash
# The seed's scenario as network namespaces (sourced by demo.sh):
#
#   A (198.51.100.37) ── R ── LAN switch 203.0.113.0/24 ── B (203.0.113.86, 2001:db8:b::86)
#                             2001:db8:b::/64          └── C (203.0.113.20, 2001:db8:b::20)
#
# A's tunnel addresses 203.0.113.87 and 2001:db8:b::87 are the ghost host B answers ARP and Neighbor
# Solicitations for; the IPv4-only uplinks carry A's IPv6 as protocol 41. Only documentation addresses
# are used, and everything lives in namespaces named "${LAB_PREFIX}-*".

LAB_PREFIX=${LAB_PREFIX:-ipipdemo}
# The gateways' uplinks receive like real NICs (GRO on, see lab_nic_like); LAB_GRO=off (or the tests'
# IPIPD_LAB_GRO=off, or a script's --gro off) leaves the veths as they come.
LAB_GRO=${LAB_GRO:-${IPIPD_LAB_GRO:-on}}
LAB_PIDS=()
# Machine B's address on its LAN (an HA pair's scripts give each box its own and keepalived the seed's).
LAB_B_ADDRESS=${LAB_B_ADDRESS:-203.0.113.86}
# Every namespace lab_down removes: a script that adds one appends it here.
LAB_NAMESPACES=(a r lan b c)

ns() { echo "${LAB_PREFIX}-$1"; }
in_ns() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }

# veth between two namespaces: lab_link NS_A IF_A NS_B IF_B
lab_link() {
    local a=$1 ifa=$2 b=$3 ifb=$4 tmp="${LAB_PREFIX:0:6}$RANDOM"
    ip link add "${tmp}a" netns "$(ns "$a")" type veth peer name "${tmp}b" netns "$(ns "$b")"
    ip -n "$(ns "$a")" link set "${tmp}a" name "$ifa"
    ip -n "$(ns "$b")" link set "${tmp}b" name "$ifb"
    ip -n "$(ns "$a")" link set "$ifa" up
    ip -n "$(ns "$b")" link set "$ifb" up
}

# Makes a gateway's uplink receive like a real NIC: lab_nic_like NS IF PEER_NS PEER_IF. GRO on, in NAPI
# with a 50 µs flush timeout and two deferred interrupts, and the veth's far end sending MTU-sized frames
# as a wire does (TSO off there: a veth passes a sender's TSO super-packets through whole, and uses GRO
# only for frames from a peer without TSO). The kernel then merges IP-in-IP and 6in4 TCP flows before
# ipipd's capture sees them, as virtio_net, ixgbe or mlx5 do. Nothing changes with LAB_GRO=off.
lab_nic_like() {
    local namespace=$1 interface=$2 peer_namespace=$3 peer_interface=$4
    [[ $LAB_GRO == on ]] || return 0
    ip netns exec "$(ns "$peer_namespace")" ethtool -K "$peer_interface" tso off >/dev/null
    ip netns exec "$(ns "$namespace")" ethtool -K "$interface" gro on >/dev/null
    ip netns exec "$(ns "$namespace")" sh -c "echo 50000 > /sys/class/net/$interface/gro_flush_timeout && echo 2 > /sys/class/net/$interface/napi_defer_hard_irqs"
}

lab_up() {
    local n
    for n in a r lan b c; do
        ip netns add "$(ns $n)"
        ip -n "$(ns $n)" link set lo up
    done
    # The LAN is a bridge in its own namespace: a switch with ports for R, B and C.
    ip -n "$(ns lan)" link add br0 type bridge
    ip -n "$(ns lan)" link set br0 up
    lab_link a eth0 r eth0
    lab_link r eth1 lan pr
    lab_link b eth0 lan pb
    lab_link c eth0 lan pc
    for port in pr pb pc; do ip -n "$(ns lan)" link set "$port" master br0; done
    lab_nic_like a eth0 r eth0
    lab_nic_like b eth0 lan pb

    ip -n "$(ns a)" addr add 198.51.100.37/24 dev eth0
    ip -n "$(ns a)" route add default via 198.51.100.1
    ip -n "$(ns r)" addr add 198.51.100.1/24 dev eth0
    ip -n "$(ns r)" addr add 203.0.113.1/24 dev eth1
    in_ns r sysctl -qw net.ipv4.ip_forward=1
    ip -n "$(ns b)" addr add "$LAB_B_ADDRESS/24" dev eth0
    ip -n "$(ns b)" route add default via 203.0.113.1
    ip -n "$(ns c)" addr add 203.0.113.20/24 dev eth0
    ip -n "$(ns c)" route add default via 203.0.113.1
    # The LAN's IPv6 prefix (no DAD: the addresses work at once); R routes no IPv6.
    ip -n "$(ns b)" addr add 2001:db8:b::86/64 dev eth0 nodad
    ip -n "$(ns c)" addr add 2001:db8:b::20/64 dev eth0 nodad
}

# Makes the uplinks IPv6-only, for config/machine-{a,b}-ip6tnl.yaml: A 2001:db8:a::37 (its IPv4 address
# removed), R routing between 2001:db8:a::/64 and the LAN's 2001:db8:b::/64, B's default route via R.
# Returns once no address is tentative any more (duplicate address detection holds the first packets).
lab_ipv6_underlay() {
    local n
    ip -n "$(ns a)" addr del 198.51.100.37/24 dev eth0
    ip -n "$(ns a)" addr add 2001:db8:a::37/64 dev eth0 nodad
    ip -n "$(ns a)" -6 route add default via 2001:db8:a::1
    ip -n "$(ns r)" addr add 2001:db8:a::1/64 dev eth0 nodad
    ip -n "$(ns r)" addr add 2001:db8:b::1/64 dev eth1 nodad
    in_ns r sysctl -qw net.ipv6.conf.all.forwarding=1
    ip -n "$(ns b)" -6 route add default via 2001:db8:b::1
    # An uplink address that stays when the link goes down, as an admin's static address does on a real
    # box (the kernel's default flushes IPv6 addresses with the link).
    for n in a b; do in_ns "$n" sysctl -qw net.ipv6.conf.eth0.keep_addr_on_down=1; done
    for n in a r b c; do
        for _ in $(seq 50); do [[ -z $(ip -n "$(ns "$n")" -6 addr show tentative) ]] && break; sleep 0.1; done
    done
}

# The example configs of machine A or B for an encapsulation: lab_config MACHINE plain|fou|gue|ip6tnl
# FILE. GUE is FOU's with one port that takes both families.
lab_config() {
    local machine=$1 encap=$2 file=$3
    case $encap in
        plain) cp "config/machine-$machine.yaml" "$file" ;;
        fou|ip6tnl) cp "config/machine-$machine-$encap.yaml" "$file" ;;
        gue) sed -e 's/type: fou, dport: 5555, dport6: 5556/type: gue, dport: 6080/' -e 's/- {port: 5555, ipproto: 4}/- {port: 6080, gue: yes}/' \
                 -e '/- {port: 5556, ipproto: 41}/d' "config/machine-$machine-fou.yaml" >"$file" ;;
        *) echo "unknown encapsulation $encap (plain, fou, gue, ip6tnl)" >&2; return 64 ;;
    esac
}

# Starts `ipipd run` in a machine's namespace and prints its PID once it is up:
# lab_start_ipipd BINARY MACHINE CONFIG RUNTIME_DIR LOG [TUNNEL_UP_LINES_ALREADY_IN_LOG]
# (the process is inside the namespace: lab_down ends it even when it never came up).
lab_start_ipipd() {
    local binary=$1 machine=$2 config=$3 runtime=$4 log=$5 before=${6:-0} pid
    mkdir -p "$runtime"
    ip netns exec "$(ns "$machine")" "$binary" run -c "$config" --runtime-dir "$runtime" >>"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        [[ $(grep -c "tunnel up" "$log") -gt $before ]] && { echo "$pid"; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "ipipd on $machine did not come up (log: $log)" >&2
    return 1
}

# Ends every process the lab started (by PID), then deletes the namespaces.
lab_down() {
    local pid n
    for pid in "${LAB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${LAB_PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    LAB_PIDS=()
    # Whatever else runs inside (e.g. the daemons of a lab kept with --keep): TERM, then KILL, by PID.
    local inside=()
    for n in "${LAB_NAMESPACES[@]}"; do
        if ip netns list | grep -qw "$(ns $n)"; then inside+=($(ip netns pids "$(ns $n)" 2>/dev/null)); fi
    done
    for pid in "${inside[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${inside[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    for n in "${LAB_NAMESPACES[@]}"; do
        if ip netns list | grep -qw "$(ns $n)"; then ip netns delete "$(ns $n)" 2>/dev/null || true; fi
    done
    return 0
}
