#!/usr/bin/env python3
"""ipipd side by side with direct routing, OpenVPN and tinc, on one machine, in one run.

Each configuration gets a fresh topology of network namespaces (documentation addresses only):

    c1 192.0.2.10 -- A (198.51.100.37) -- R -- B (203.0.113.86) -- c2 192.0.2.130

R routes only between the gateways' uplinks, so c1 <-> c2 traffic can only cross through the tunnel
under test (or, for "direct", through routes R is given). The gateways' uplinks receive like real NICs,
GRO on (--gro off: bare veths); the -gro-off configurations run with bare veths in the same run. Every load is bounded in time. Results: a
table with ratios to direct routing and to OpenVPN from the same run, each target of issues 6, 13, 22 and 25 judged on
its ratio in every run (with the median when --runs repeats the comparison), and a JSON file.
Run through scripts/bench.sh (root).
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import latency

PREFIX = "ipbench"
ROLES = ["c1", "a", "r", "b", "c2"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ns(role):
    return f"{PREFIX}-{role}"


def sh(command, check=True, timeout=120):
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"`{command}` failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result.stdout


def inside(role, command, **kwargs):
    return sh(f"ip netns exec {ns(role)} sh -c {shell_quote(command)}", **kwargs)


def shell_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


class Lab:
    """The five namespaces, and every process started in them (ended by PID)."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.processes = []

    def up(self, offloads=True, uplink_gro=True):
        self.down()
        # The previous configuration's processes end, and the kernel dismantles deleted namespaces in
        # the background: let that finish before the next configuration is measured.
        wait_until_quiet()
        for role in ROLES:
            sh(f"ip netns add {ns(role)} && ip -n {ns(role)} link set lo up")
        links = [("c1", "eth0", "a", "lan0"), ("a", "eth0", "r", "eth0"), ("r", "eth1", "b", "eth0"), ("b", "lan0", "c2", "eth0")]
        for index, (left, lname, right, rname) in enumerate(links):
            sh(f"ip link add ipb{index}a mtu 1500 netns {ns(left)} type veth peer name ipb{index}b mtu 1500 netns {ns(right)}")
            sh(f"ip -n {ns(left)} link set ipb{index}a name {lname} && ip -n {ns(left)} link set {lname} up")
            sh(f"ip -n {ns(right)} link set ipb{index}b name {rname} && ip -n {ns(right)} link set {rname} up")
            if not offloads:
                for role, name in ((left, lname), (right, rname)):
                    inside(role, f"ethtool -K {name} gso off gro off tso off >/dev/null 2>&1")
        if offloads and uplink_gro:
            # The gateways' uplinks receive like real NICs: GRO on in NAPI (50 us flush timeout, two
            # deferred interrupts), and R's side sending MTU-sized frames as a wire does (TSO off: a veth
            # passes a sender's TSO super-packets through whole, and uses GRO only for frames from a peer
            # without TSO). The kernel then merges IP-in-IP and 6in4 TCP flows before ipipd sees them.
            for gateway, uplink, peer in (("a", "eth0", "eth0"), ("b", "eth0", "eth1")):
                inside("r", f"ethtool -K {peer} tso off >/dev/null")
                inside(gateway, f"ethtool -K {uplink} gro on >/dev/null && echo 50000 > /sys/class/net/{uplink}/gro_flush_timeout"
                                f" && echo 2 > /sys/class/net/{uplink}/napi_defer_hard_irqs")
        inside("c1", "ip addr add 192.0.2.10/25 dev eth0 && ip route add default via 192.0.2.1")
        inside("a", "ip addr add 192.0.2.1/25 dev lan0 && ip addr add 198.51.100.37/24 dev eth0 && ip route add default via 198.51.100.1 && sysctl -qw net.ipv4.ip_forward=1")
        inside("r", "ip addr add 198.51.100.1/24 dev eth0 && ip addr add 203.0.113.1/24 dev eth1 && sysctl -qw net.ipv4.ip_forward=1")
        inside("b", "ip addr add 203.0.113.86/24 dev eth0 && ip route add default via 203.0.113.1 && ip addr add 192.0.2.129/25 dev lan0 && sysctl -qw net.ipv4.ip_forward=1")
        inside("c2", "ip addr add 192.0.2.130/25 dev eth0 && ip route add default via 192.0.2.129")
        # IPv6 between the LANs (the tunnels that carry it: 6in4 through ipipd).
        inside("c1", "ip addr add 2001:db8:1::10/64 dev eth0 nodad && ip -6 route add default via 2001:db8:1::1")
        inside("a", "ip addr add 2001:db8:1::1/64 dev lan0 nodad")
        inside("b", "ip addr add 2001:db8:2::1/64 dev lan0 nodad")
        inside("c2", "ip addr add 2001:db8:2::10/64 dev eth0 nodad && ip -6 route add default via 2001:db8:2::1")

    def spawn(self, role, argv, log):
        handle = open(os.path.join(self.scratch, log), "w")
        process = subprocess.Popen(["ip", "netns", "exec", ns(role)] + argv, stdout=handle, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def down(self):
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.time() + 3
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
        existing = sh("ip netns list", check=False)
        for role in ROLES:
            if re.search(rf"^{ns(role)}\b", existing, re.M):
                for pid in sh(f"ip netns pids {ns(role)}", check=False).split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                sh(f"ip netns delete {ns(role)}", check=False)


def cpu_busy_fraction(seconds):
    """The share of all CPUs' time not spent idle during the next `seconds` (from /proc/stat)."""
    def sample():
        fields = [int(value) for value in open("/proc/stat").readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]   # total, idle + iowait
    total_before, idle_before = sample()
    time.sleep(seconds)
    total_after, idle_after = sample()
    return 1 - (idle_after - idle_before) / max(1, total_after - total_before)


def wait_until_quiet(busy_below=0.10, timeout=60):
    """Waits until the machine has been at least 90 % idle for half a second, at most `timeout` s."""
    deadline = time.time() + timeout
    busy = 1.0
    while time.time() < deadline:
        busy = cpu_busy_fraction(0.5)
        if busy < busy_below:
            return
    print(f"note: the machine is still {busy:.0%} busy after {timeout} s; measuring anyway", flush=True)


def wait_for(predicate, timeout=15, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def reachable():
    return subprocess.run(["ip", "netns", "exec", ns("c1"), "ping", "-c", "1", "-W", "1", "192.0.2.130"],
                          capture_output=True).returncode == 0


# --- the configurations -------------------------------------------------------------------------

def setup_direct(lab, args):
    inside("r", "ip route add 192.0.2.0/25 via 198.51.100.37 && ip route add 192.0.2.128/25 via 203.0.113.86")
    return []


# What turns the example configs' single peer into a FOU peer, as `ip fou add port 5555 ipproto 4` (and 5556
# ipproto 41) with `encap fou encap-sport auto encap-dport 5555` on each side: the peer's key, then the listeners.
FOU_PEER = "    encap: {type: fou, dport: 5555, dport6: 5556}\n"
FOU_LISTENERS = "fou:\n  - {port: 5555, ipproto: 4}\n  - {port: 5556, ipproto: 41}\n"


def setup_ipipd(lab, args, delivery=None, binary=None, ipv4_only=False, fou=False):
    """Both gateways on the example configs; with `delivery`, that `tunnel.delivery` added (without it,
    the default, kernel: and a binary from before the key existed runs them too); with `ipv4_only`,
    without their IPv6 routes (for a binary from before IPv6 existed); with `fou`, the peer over FOU."""
    pids = []
    for role, config in (("a", "lab-site-a.yaml"), ("b", "lab-site-b.yaml")):
        runtime = os.path.join(lab.scratch, f"run-{role}")
        os.makedirs(runtime, exist_ok=True)
        path = os.path.join(REPO, "config", config)
        if delivery or ipv4_only or fou:
            path = os.path.join(lab.scratch, f"{role}-{delivery or ('fou' if fou else 'ipv4')}.yaml")
            with open(os.path.join(REPO, "config", config)) as source, open(path, "w") as target:
                # The example ends inside its only peer, so the peer's key goes right after it.
                lines = [line for line in source.read().rstrip("\n").split("\n") if not (ipv4_only and "2001:db8" in line)]
                target.write("\n".join(lines) + "\n" + (FOU_PEER + FOU_LISTENERS if fou else "")
                             + (f"tunnel: {{delivery: {delivery}}}\n" if delivery else ""))
        process = lab.spawn(role, [binary or args.ipipd, "run", "-c", path, "--runtime-dir", runtime,
                                   "--user", "root", "--log-level", "warning"], f"ipipd-{role}.log")
        pids.append(process.pid)
    return pids


def setup_ipipd_routed(lab, args):
    return setup_ipipd(lab, args, delivery="routed")


def setup_ipipd_fou(lab, args):
    return setup_ipipd(lab, args, fou=True)


def setup_ipipd_gro_off(lab, args):
    return setup_ipipd(lab, args)


def setup_baseline(lab, args):
    return setup_ipipd(lab, args, binary=args.baseline, ipv4_only=True)


def setup_openvpn(lab, args):
    pids = []
    for role, local, remote, mine, theirs, route in (
            ("a", "198.51.100.37", "203.0.113.86", "198.18.0.1", "198.18.0.2", "192.0.2.128 255.255.255.128"),
            ("b", "203.0.113.86", "198.51.100.37", "198.18.0.2", "198.18.0.1", "192.0.2.0 255.255.255.128")):
        argv = ["openvpn", "--dev", "tun0", "--dev-type", "tun", "--proto", "udp", "--local", local, "--remote", remote,
                "--port", "1194", "--ifconfig", mine, theirs, "--route", *route.split(), "--cipher", "none", "--auth", "none",
                "--disable-dco", "--verb", "1", "--allow-compression", "no"]
        pids.append(lab.spawn(role, argv, f"openvpn-{role}.log").pid)
    return pids


def setup_tinc(lab, args):
    pids = []
    nodes = {"a": ("198.51.100.37", "192.0.2.0/25", "192.0.2.128/25", "b"),
             "b": ("203.0.113.86", "192.0.2.128/25", "192.0.2.0/25", "a")}
    directories = {}
    for role, (address, subnet, other, peer) in nodes.items():
        directory = os.path.join(lab.scratch, f"tinc-{role}")
        os.makedirs(os.path.join(directory, "hosts"), exist_ok=True)
        with open(os.path.join(directory, "tinc.conf"), "w") as f:
            f.write(f"Name = {role}\nMode = router\nInterface = tinc0\nDeviceType = tun\nAddressFamily = ipv4\n"
                    f"BindToAddress = {address}\nConnectTo = {peer}\n")
        with open(os.path.join(directory, "hosts", role), "w") as f:
            f.write(f"Address = {address}\nSubnet = {subnet}\nCipher = none\nDigest = none\n")
        with open(os.path.join(directory, "tinc-up"), "w") as f:
            f.write(f"#!/bin/sh\nip link set $INTERFACE up\nip route add {other} dev $INTERFACE\n")
        os.chmod(os.path.join(directory, "tinc-up"), 0o755)
        sh(f"tincd -c {directory} -K 2048 </dev/null >/dev/null 2>&1")
        directories[role] = directory
    for role, (_, _, _, peer) in nodes.items():
        shutil.copy(os.path.join(directories[peer], "hosts", peer), os.path.join(directories[role], "hosts", peer))
    for role in nodes:
        pids.append(lab.spawn(role, ["tincd", "-c", directories[role], "-D", "--pidfile", os.path.join(directories[role], "pid")],
                              f"tinc-{role}.log").pid)
    return pids


# name: (setup, offloads on the veths, the uplinks receive like NICs: None = as --gro says, False = never)
CONFIGURATIONS = {
    "direct": (setup_direct, True, None),
    "direct-no-offload": (setup_direct, False, False),
    "ipipd": (setup_ipipd, True, None),                 # delivery: kernel, the default
    "ipipd-routed": (setup_ipipd_routed, True, None),
    "ipipd-fou": (setup_ipipd_fou, True, None),         # the same peer over FOU (UDP port 5555, 5556 for IPv6)
    "ipipd-gro-off": (setup_ipipd, True, False),        # the same two with the uplinks as bare veths (GRO off)
    "ipipd-routed-gro-off": (setup_ipipd_routed, True, False),
    "openvpn": (setup_openvpn, True, None),
    "tinc": (setup_tinc, True, None),
    "baseline": (setup_baseline, True, None),           # --baseline: an earlier ipipd binary, for "no slower than"
}
# Configurations that carry IPv6 (6in4): they get an IPv6 TCP figure too.
IPV6_CONFIGURATIONS = {"ipipd", "ipipd-routed", "ipipd-fou", "ipipd-gro-off", "ipipd-routed-gro-off"}


# --- measurements -------------------------------------------------------------------------------

def cpu_seconds(pids):
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def memory_kib(pid, field):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return None


def lan_packets_delivered():
    """UDP datagrams that reached the server's UDP layer (c2's Udp InDatagrams and InErrors, which counts
    those its full socket dropped), whatever carried them: B's lan0 counts a super-packet of datagrams
    (UDP GRO, issue 26) as one packet, c2's UDP layer counts each datagram it was cut into."""
    header, values = [line.split()[1:] for line in inside("c2", "cat /proc/net/snmp").splitlines() if line.startswith("Udp:")][:2]
    counts = dict(zip(header, map(int, values)))
    return counts["InDatagrams"] + counts["InErrors"]


def iperf(lab, arguments, duration, server_address="192.0.2.130"):
    server = lab.spawn("c2", ["iperf3", "-s", "-1", "-B", server_address], "iperf-server.log")
    time.sleep(0.5)
    output = inside("c1", f"iperf3 -c {server_address} -J -t {duration} {arguments}", timeout=duration + 60)
    server.wait(timeout=15)
    return json.loads(output)


def measure(lab, pids, args, ipv6=False):
    result = {}
    cpu_before = cpu_seconds(pids)
    tcp = iperf(lab, "", args.duration)
    cpu_after = cpu_seconds(pids)
    received_bytes = tcp["end"]["sum_received"]["bytes"]
    result["tcp1_mbps"] = tcp["end"]["sum_received"]["bits_per_second"] / 1e6
    result["tcp1_retransmits"] = tcp["end"]["sum_sent"].get("retransmits", 0)
    result["cpu_seconds_per_gb"] = (cpu_after - cpu_before) / (received_bytes / 1e9) if pids and received_bytes else None
    if ipv6:
        tcp6 = iperf(lab, "", args.duration, server_address="2001:db8:2::10")
        result["tcp1_ipv6_mbps"] = tcp6["end"]["sum_received"]["bits_per_second"] / 1e6
    tcp4 = iperf(lab, "-P 4", args.duration)
    result["tcp4_mbps"] = tcp4["end"]["sum_received"]["bits_per_second"] / 1e6
    result["tcp4_retransmits"] = tcp4["end"]["sum_sent"].get("retransmits", 0)
    lan_before = lan_packets_delivered()
    udp = iperf(lab, "-u -b 0 -l 64", args.duration)
    summary = udp["end"]["sum"]
    received = summary["packets"] - summary["lost_packets"]
    result["udp64_received_pps"] = received / summary["seconds"]
    result["udp64_loss_percent"] = summary["lost_percent"]
    # What the gateway delivered to the server; the difference to the above is dropped by the server's
    # own socket (its iperf3 shares the CPUs with everything else).
    result["udp64_delivered_to_lan_pps"] = (lan_packets_delivered() - lan_before) / summary["seconds"]
    udp1400 = iperf(lab, "-u -b 0 -l 1400", args.duration)
    summary = udp1400["end"]["sum"]
    result["udp1400_received_mbps"] = (summary["packets"] - summary["lost_packets"]) * 1400 * 8 / summary["seconds"] / 1e6
    time.sleep(2)   # let the queues of the floods above drain before measuring latency
    ping = inside("c1", "ping -c 200 -i 0.01 -W 1 192.0.2.130", check=False, timeout=60)
    rtts = sorted(float(value) for value in re.findall(r"time=([0-9.]+)", ping))
    if rtts:
        result["ping_p50_ms"] = statistics.median(rtts)
        result["ping_p99_ms"] = rtts[min(len(rtts) - 1, int(round(0.99 * (len(rtts) - 1))))]
        result["ping_replies"] = len(rtts)
    return result


def soak(lab, pids, seconds):
    """RSS of the first tunnel process at the first and last second of a full-speed UDP run."""
    server = lab.spawn("c2", ["iperf3", "-s", "-1", "-B", "192.0.2.130"], "iperf-soak.log")
    time.sleep(0.5)
    client = lab.spawn("c1", ["iperf3", "-c", "192.0.2.130", "-u", "-b", "0", "-l", "64", "-t", str(seconds)], "iperf-soak-client.log")
    time.sleep(1)
    first = memory_kib(pids[0], "VmRSS")
    time.sleep(seconds - 2)
    last = memory_kib(pids[0], "VmRSS")
    client.wait(timeout=30)
    server.wait(timeout=15)
    return {"rss_first_kib": first, "rss_last_kib": last, "rss_growth_percent": (last - first) * 100.0 / first if first else None}


# --- report -------------------------------------------------------------------------------------

FIGURES = [("tcp1_mbps", "TCP 1 stream, Mbit/s", True), ("tcp1_retransmits", "  retransmits", False),
           ("tcp1_ipv6_mbps", "TCP 1 stream IPv6, Mbit/s", True),
           ("tcp4_mbps", "TCP 4 streams, Mbit/s", True), ("tcp4_retransmits", "  retransmits", False),
           ("udp64_received_pps", "UDP 64 B, received pkt/s", True), ("udp64_loss_percent", "  loss %", False),
           ("udp64_delivered_to_lan_pps", "  reached c2's UDP, pkt/s", True),
           ("udp1400_received_mbps", "UDP 1400 B, received Mbit/s", True), ("ping_p50_ms", "ping p50, ms", False),
           ("ping_p99_ms", "ping p99, ms", False), ("cpu_seconds_per_gb", "tunnel CPU-s per GB", False),
           ("peak_rss_kib", "ipipd peak RSS, KiB", False)]


def report(results, ratios_from="same run"):
    names = list(results)
    lines = ["figure".ljust(30) + "".join(name.rjust(24) for name in names)]
    for key, label, _ in FIGURES:
        row = label.ljust(30)
        for name in names:
            value = results[name].get(key)
            if value is None:
                row += "-".rjust(24)
                continue
            cell = f"{value:.3g}" if isinstance(value, float) else str(value)
            ratios = []
            for base, tag in (("direct", "d"), ("openvpn", "o")):
                base_value = results.get(base, {}).get(key)
                if base_value and name != base and isinstance(value, (int, float)) and base_value != 0:
                    ratios.append(f"{tag}{value / base_value:.2f}")
            row += (cell + (" (" + " ".join(ratios) + ")" if ratios else "")).rjust(24)
        lines.append(row)
    lines.append(f"ratios: d = to direct routing, o = to OpenVPN, {ratios_from}")
    return "\n".join(lines)


# The targets of issue 6, each a ratio within one run: (label, figure, baselines, comparison, bound).
# The baseline is the best of the named configurations (highest for rates, lowest for costs).
TARGETS = [("TCP 1 stream >= 1.5 x the best of OpenVPN and tinc", "tcp1_mbps", ("openvpn", "tinc"), ">=", 1.5),
           ("UDP 64 B received >= 2 x OpenVPN", "udp64_received_pps", ("openvpn",), ">=", 2.0),
           ("ping p50 no worse than OpenVPN", "ping_p50_ms", ("openvpn",), "<=", 1.0),
           ("ping p99 no worse than OpenVPN", "ping_p99_ms", ("openvpn",), "<=", 1.0),
           ("CPU-s per GB lower than OpenVPN", "cpu_seconds_per_gb", ("openvpn",), "<", 1.0)]
# Issue 26: the goals for the default (kernel delivery), each judged in every run.
TARGETS += [("TCP 1 stream >= 4 x OpenVPN", "tcp1_mbps", ("openvpn",), ">=", 4.0),
            ("UDP 64 B received >= 2.5 x OpenVPN", "udp64_received_pps", ("openvpn",), ">=", 2.5),
            ("ping p50 <= 0.9 x the best of OpenVPN and tinc", "ping_p50_ms", ("openvpn", "tinc"), "<=", 0.9),
            ("CPU-s per GB <= 0.35 x OpenVPN", "cpu_seconds_per_gb", ("openvpn",), "<=", 0.35)]
# Issue 13: the kernel's receive path costs no throughput against raw reinjection, in this binary
# (delivery: routed) and in the binary given as --baseline (before delivery: kernel existed).
TARGETS += [(f"{figure} kernel delivery >= {name}", key, (name,), ">=", 1.0)
            for name in ("ipipd-routed", "baseline")
            for figure, key in (("TCP 1 stream", "tcp1_mbps"), ("UDP 64 B received", "udp64_received_pps"))]
# Issue 22: uplinks that merge like real NICs cost no TCP throughput against bare veths, in both delivery
# modes and both families (the ratio of the GRO-on configuration to its GRO-off twin in the same run).
GRO_TARGETS = [(f"TCP 1 stream{family} {mode} with GRO on >= GRO off", key, on, off)
               for mode, on, off in (("kernel delivery", "ipipd", "ipipd-gro-off"), ("routed delivery", "ipipd-routed", "ipipd-routed-gro-off"))
               for family, key in (("", "tcp1_mbps"), (" IPv6", "tcp1_ipv6_mbps"))]
# Issue 25: FOU's 8 more bytes and UDP checksum cost at most 15 % of plain IP-in-IP's TCP throughput.
FOU_TARGETS = [(f"TCP 1 stream{family} over FOU >= 0.85 x plain", key, "ipipd-fou", "ipipd", 0.85)
               for family, key in (("", "tcp1_mbps"), (" IPv6", "tcp1_ipv6_mbps"))]
RSS_TARGET = ("RSS flat (within 10 %) over the soak", 10.0)


def judge(results):
    """[(label, value, met)] for one run's results; value and met are None where a figure is missing."""
    verdicts = []
    for label, key, baselines, comparison, bound in TARGETS:
        ours = results.get("ipipd", {}).get(key)
        theirs = [results[name][key] for name in baselines if results.get(name, {}).get(key)]
        if ours is None or not theirs:
            verdicts.append((label, None, None))
            continue
        value = ours / (max(theirs) if comparison == ">=" else min(theirs))
        met = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[comparison]
        verdicts.append((label, value, met))
    for label, key, on, off in GRO_TARGETS:
        ours, theirs = results.get(on, {}).get(key), results.get(off, {}).get(key)
        verdicts.append((label, None, None) if not ours or not theirs else (label, ours / theirs, ours / theirs >= 1.0))
    for label, key, ours_name, theirs_name, bound in FOU_TARGETS:
        ours, theirs = results.get(ours_name, {}).get(key), results.get(theirs_name, {}).get(key)
        verdicts.append((label, None, None) if not ours or not theirs else (label, ours / theirs, ours / theirs >= bound))
    growth = results.get("ipipd", {}).get("rss_growth_percent")
    label, bound = RSS_TARGET
    verdicts.append((label, growth, None if growth is None else abs(growth) <= bound))
    return verdicts


def report_targets(verdicts_by_run):
    """One line per target: its value in each run, the median over the runs, and how many runs met it."""
    lines = []
    for index, (label, _, _) in enumerate(verdicts_by_run[0]):
        values = [run[index][1] for run in verdicts_by_run if run[index][1] is not None]
        met = [run[index][2] for run in verdicts_by_run if run[index][2] is not None]
        if not values:
            lines.append(f"{label}: not measured")
            continue
        unit = " %" if label == RSS_TARGET[0] else " x"
        shown = ", ".join(f"{value:.2f}" for value in values)
        line = f"{label}: {shown}{unit} -> met in {sum(met)} of {len(met)} run(s)"
        if len(values) > 1:
            line += f" (median {statistics.median(values):.2f}{unit})"
        lines.append(line)
    return "\n".join(lines)


def median_results(runs):
    """Each configuration's figures, each the median over the runs that measured it."""
    names = [name for name in runs[0] if all(name in run for run in runs)]
    medians = {}
    for name in names:
        keys = {key for run in runs for key, value in run[name].items() if isinstance(value, (int, float))}
        medians[name] = {key: statistics.median(run[name][key] for run in runs if run[name].get(key) is not None)
                         for key in sorted(keys) if any(run[name].get(key) is not None for run in runs)}
    return medians


def run_once(lab, args):
    results = {}
    for name in args.only or [name for name in CONFIGURATIONS if name != "baseline" or args.baseline]:
        setup, offloads, uplink_gro = CONFIGURATIONS[name]
        print(f"== {name}", flush=True)
        lab.up(offloads=offloads, uplink_gro=args.gro == "on" if uplink_gro is None else uplink_gro)
        pids = setup(lab, args)
        wait_for(reachable, timeout=30, what=f"{name} to carry c1 -> c2")
        results[name] = measure(lab, pids, args, ipv6=name in IPV6_CONFIGURATIONS)
        if name.startswith("ipipd"):
            if args.soak and name == "ipipd":
                results[name].update(soak(lab, pids, args.soak))
            results[name]["peak_rss_kib"] = max(filter(None, (memory_kib(pid, "VmHWM") for pid in pids)), default=None)
        print(json.dumps(results[name], indent=1), flush=True)
        lab.down()
    return results


# The threads of each tunnel, by role, for the latency breakdown: (process names, TUN reader's, uplink reader's).
LATENCY_THREADS = {"ipipd": (["ipipd-tun"], ["ipipd-capture"]), "openvpn": (["openvpn"], ["openvpn"]),
                   "tinc": (["tincd"], ["tincd"])}
TUN_DEVICES = {"ipipd": "tunl", "openvpn": "tun0", "tinc": "tinc0"}


def latency_run(lab, args):
    """The latency breakdown of each configuration asked for (ipipd, OpenVPN and tinc by default)."""
    names = args.only or ["ipipd", "openvpn", "tinc"]
    output = {}
    for name in names:
        kind = "ipipd" if name.startswith("ipipd") or name == "baseline" else name
        if kind not in LATENCY_THREADS:
            print(f"== {name}: no latency breakdown (no tunnel threads to follow)")
            continue
        setup, offloads, uplink_gro = CONFIGURATIONS[name]
        print(f"== {name}", flush=True)
        lab.up(offloads=offloads, uplink_gro=args.gro == "on" if uplink_gro is None else uplink_gro)
        pids = setup(lab, args)
        wait_for(reachable, timeout=30, what=f"{name} to carry c1 -> c2")
        time.sleep(1)
        tun_names, capture_names = LATENCY_THREADS[kind]
        threads = {}
        for gateway, pid in zip(("A", "B"), pids):
            threads[f"{gateway}-tun"] = latency.threads_of(pid, tun_names)
            threads[f"{gateway}-capture"] = latency.threads_of(pid, capture_names)
        stages, trips, rtts, syscalls = latency.breakdown(inside, threads, TUN_DEVICES[kind], count=args.latency_pings,
                                                           syscalls=args.latency_syscalls)
        print(latency.report(name, stages, trips, rtts), flush=True)
        output[name] = {"stages_us": {stage: statistics.median(values) for stage, values in stages.items()},
                        "round_trips": len(trips), "ping_p50_us": statistics.median(rtts) if rtts else None}
        if syscalls:
            print(latency.report_syscalls(syscalls), flush=True)
            output[name]["system_calls_us"] = {stage: pieces for stage, (pieces, _, _) in syscalls.items()}
        lab.down()
    return output


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipipd", required=True, help="the ipipd binary (release build)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per iperf3 test (default 10)")
    parser.add_argument("--soak", type=int, default=60, help="seconds of the RSS soak for ipipd (default 60; 0: skip)")
    parser.add_argument("--runs", type=int, default=1,
                        help="run the whole comparison this many times, one run after the other (default 1); "
                             "the report then gives each target's median over the runs and how many runs met it")
    parser.add_argument("--only", nargs="*", choices=list(CONFIGURATIONS), help="configurations to run (default: all)")
    parser.add_argument("--json", default="bench-results.json", help="where to write the results")
    parser.add_argument("--gro", choices=["on", "off"], default="on",
                        help="the gateways' uplinks receive like real NICs, GRO on (default), or as bare veths; "
                             "the -gro-off configurations are bare veths either way")
    parser.add_argument("--latency", action="store_true",
                        help="instead of the benchmark: where a ping's round trip goes, stage by stage, traced with perf "
                             "(configurations: --only, default ipipd, openvpn and tinc)")
    parser.add_argument("--latency-pings", type=int, default=300, help="pings traced per configuration (default 300)")
    parser.add_argument("--latency-syscalls", action="store_true",
                        help="with --latency: also split each stage a tunnel's thread does itself into its system calls "
                             "and the user space between them (every system call of those threads traced)")
    parser.add_argument("--baseline", help="an earlier ipipd binary, run on the example configs without their IPv6 "
                                           "routes (configuration \"baseline\"), to compare this build against")
    args = parser.parse_args()
    if "baseline" in (args.only or []) and not args.baseline:
        parser.error("--only baseline needs --baseline BINARY")
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    scratch = tempfile.mkdtemp(prefix="ipipd-bench.")
    lab = Lab(scratch)
    if args.latency:
        try:
            document = latency_run(lab, args)
        finally:
            lab.down()
            shutil.rmtree(scratch, ignore_errors=True)
        with open(args.json, "w") as f:
            json.dump({"latency": document}, f, indent=1)
        return 0
    runs = []
    try:
        for index in range(args.runs):
            if args.runs > 1:
                print(f"=== run {index + 1} of {args.runs}", flush=True)
            runs.append(run_once(lab, args))
    finally:
        lab.down()
        shutil.rmtree(scratch, ignore_errors=True)
    machine = {"cpus": os.cpu_count(), "kernel": os.uname().release,
               "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "duration_s": args.duration, "uplink_gro": args.gro}
    verdicts = [judge(results) for results in runs]
    document = {"machine": machine, "results": runs[0] if len(runs) == 1 else median_results(runs), "runs": runs,
                "targets": [[{"target": label, "value": value, "met": met} for label, value, met in run] for run in verdicts]}
    with open(args.json, "w") as f:
        json.dump(document, f, indent=1)
    for index, results in enumerate(runs):
        print(f"\n-- run {index + 1} of {len(runs)}" if len(runs) > 1 else "")
        print(report(results))
    if len(runs) > 1:
        print(f"\n-- median of the {len(runs)} runs (each figure on its own)")
        print(report(document["results"], ratios_from="of the medians"))
    print("\ntargets (ratios within each run):")
    print(report_targets(verdicts))
    print(f"\nmachine: {machine}\nJSON: {args.json} (\"results\": " + ("the run" if len(runs) == 1 else "the medians") + ", \"runs\": each run)")


if __name__ == "__main__":
    sys.exit(main())
