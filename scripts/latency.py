"""Where a ping's round trip goes through the benchmark's topology (issue 26): `scripts/bench.sh --latency`.

While c1 pings c2 through the tunnel, `perf record` takes kernel tracepoints on every CPU: each device
queueing or receiving the echo or its reply (net:net_dev_queue, net:netif_receive_skb), the tunnel's
threads being woken and put on a CPU (sched:sched_wakeup, sched:sched_switch), and their system calls
that send (sendmmsg, sendto, sendmsg, write). The pings are of an unusual size, so that each packet of
theirs is told apart from everything else by its length, and sparse (one every 10 ms against a round
trip of a few hundred microseconds), so that each round trip's events follow one another in a known
order: the script walks that order for each ping and takes each stage's duration from the kernel's
own clock. Nothing in ipipd is changed or slowed for it; perf's tracing adds about a microsecond per
event to what it measures (the totals are given next to ping's own figures).

With `--latency-syscalls`, every system call of the tunnels' threads is traced as well, and each stage a
tunnel's thread does itself (from being put on a CPU, or from the step before, to its send or write) is
split into its system calls and the user-space time between them, in the order the thread made them:
where a read-and-encapsulate of 20 µs goes. Tracing every system call adds about a microsecond to each.
"""
import bisect
import os
import re
import statistics
import subprocess
import tempfile

# ping -s 200: an IPv4 packet of 228 bytes (242 with its Ethernet header), which nothing else in the lab sends.
PING_PAYLOAD = 200
INNER = PING_PAYLOAD + 28
EVENTS_BASE = ["net:net_dev_queue", "net:netif_receive_skb", "sched:sched_wakeup", "sched:sched_switch",
          "syscalls:sys_enter_sendmmsg", "syscalls:sys_enter_sendto", "syscalls:sys_enter_sendmsg", "syscalls:sys_enter_write"]
EVENTS = EVENTS_BASE + [e for e in os.environ.get("LATENCY_EXTRA_EVENTS", "").split(",") if e]
SYSCALL_EVENTS = ["raw_syscalls:sys_enter", "raw_syscalls:sys_exit"]
SENDS = {"sys_enter_sendmmsg", "sys_enter_sendto", "sys_enter_sendmsg", "sys_enter_write"}
# The x86-64 numbers of the system calls the tunnels make on their packet paths (others are shown by number).
SYSCALL_NAMES = {0: "read", 1: "write", 7: "poll", 23: "select", 24: "sched_yield", 44: "sendto", 45: "recvfrom",
                 46: "sendmsg", 47: "recvmsg", 202: "futex", 228: "clock_gettime", 232: "epoll_wait", 270: "pselect6",
                 271: "ppoll", 281: "epoll_pwait", 299: "recvmmsg", 307: "sendmmsg"}


class Step:
    """One point of a round trip: an event of `kind` — "queue" or "receive" on device `dev` with an inner
    (`outer=False`) or tunnel (`outer=True`) packet of the ping, "wakeup"/"run" of one of the threads in
    `role`, or "send"/"write" by one of them — and the name of the stage that ends there."""

    def __init__(self, stage, kind, dev=None, outer=False, role=None, optional=False):
        self.stage, self.kind, self.dev, self.outer, self.role, self.optional = stage, kind, dev, outer, role, optional


def steps_one_way(near, far, server, tun, router_out):
    """The steps from an echo (or reply) leaving its host to `server` receiving it, through gateways `near`
    then `far`, whose TUN devices are named `tun`; the router sends it on through `router_out`. A role
    names a set of threads: "<gateway>-tun" reads the TUN device, "<gateway>-capture" the uplink (one
    thread may be both)."""
    return [
        Step(f"{near}: LAN and forwarding into the TUN device", "queue", dev=tun),
        Step(f"{near}: TUN reader woken", "wakeup", role=f"{near}-any", optional=True),
        Step(f"{near}: TUN reader on a CPU (wakeup latency)", "run", role=f"{near}-any", optional=True),
        Step(f"{near}: TUN read and encapsulation", "send", role=f"{near}-any"),
        Step(f"{near}: send system call to the uplink", "queue", dev="eth0", outer=True),
        Step(f"R: forwarding, {near} to {far}", "queue", dev=router_out, outer=True),
        Step(f"{far}: uplink receive (NAPI, GRO)", "receive", dev="eth0", outer=True),
        Step(f"{far}: uplink reader woken", "wakeup", role=f"{far}-capture", optional=True),
        Step(f"{far}: uplink reader on a CPU (wakeup latency)", "run", role=f"{far}-capture", optional=True),
        Step(f"{far}: uplink read and decapsulation", "write", role=f"{far}-capture"),
        Step(f"{far}: write to the TUN device, into the kernel", "receive", dev=tun),
        Step(f"{far}: forwarding onto the LAN", "queue", dev="lan0"),
        Step(f"{server}: LAN to the host", "receive", dev="eth0"),
    ]


def round_trip(tun):
    """c1's echo to c2 and c2's reply, step by step."""
    return ([Step("c1 sends the echo", "queue", dev="eth0")] + steps_one_way("A", "B", "c2", tun, "eth1")
            + [Step("c2 answers", "queue", dev="eth0")] + steps_one_way("B", "A", "c1", tun, "eth0"))

LINE = re.compile(r"^\s*(?P<comm>.+?)\s+(?P<tid>\d+)\s+\[(?P<cpu>\d+)\]\s+(?P<time>\d+\.\d+):\s+(?P<event>[\w:]+):\s*(?P<rest>.*)$")


def parse(script_output):
    """perf script lines as (time in µs, kind, fields) tuples, in time order."""
    events = []
    for line in script_output.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        time_us = float(match["time"]) * 1e6
        name = match["event"].split(":")[-1]
        rest = match["rest"]
        if name in ("net_dev_queue", "netif_receive_skb"):
            dev = re.search(r"dev=(\S+)", rest)
            length = re.search(r"len=(\d+)", rest)
            if dev and length:
                events.append((time_us, "queue" if name == "net_dev_queue" else "receive",
                               {"dev": dev[1], "len": int(length[1])}))
        elif name == "sched_wakeup":
            pid = re.search(r"pid=(\d+)", rest)
            if pid:
                events.append((time_us, "wakeup", {"tid": int(pid[1])}))
        elif name == "sched_switch":
            pid = re.search(r"next_pid=(\d+)", rest)
            if pid:
                events.append((time_us, "run", {"tid": int(pid[1]), "cpu": int(match["cpu"])}))
        elif name in SENDS:
            events.append((time_us, "write" if name == "sys_enter_write" else "send", {"tid": int(match["tid"])}))
        elif name in ("sys_enter", "sys_exit"):
            number = re.search(r"NR (\d+)", rest)
            if number:
                events.append((time_us, "syscall", {"tid": int(match["tid"]), "nr": int(number[1]), "enter": name == "sys_enter"}))
    events.sort(key=lambda event: event[0])
    return events


def ping_length(event, outer):
    """Whether a device event carries the ping's packet: inner (228, 242 framed) or inside a tunnel
    header of up to 100 bytes."""
    length = event[2]["len"]
    if outer:
        return INNER + 20 <= length <= INNER + 14 + 100
    return length in (INNER, INNER + 14)


def role_threads(threads, role):
    """The thread ids of `role`; "<gateway>-any": either of the gateway's threads (ipipd's uplink reader
    also reads the TUN device after it delivered packets)."""
    if role.endswith("-any"):
        gateway = role[:-len("-any")]
        return threads.get(f"{gateway}-tun", set()) | threads.get(f"{gateway}-capture", set())
    return threads.get(role, set())


def matches(step, event, threads):
    time_us, kind, fields = event
    if kind != step.kind:
        return False
    if step.dev is not None:
        return fields["dev"] == step.dev and ping_length(event, step.outer)
    return fields["tid"] in role_threads(threads, step.role)


def round_trips(events, threads, steps, windows=None):
    """Each round trip as [(stage, µs)], found by walking `steps` in order from each echo c1 sends. With
    `windows` (a list), each stage that ends in a tunnel thread's send or write is appended to it as
    (stage, start µs, end µs, thread id): what that thread did in between is the stage."""
    found = []
    index = 0
    while index < len(events):
        if not matches(steps[0], events[index], threads):
            index += 1
            continue
        times = {0: events[index][0]}
        matched = {0: events[index]}
        cursor = index + 1
        complete = True
        # The mandatory steps in order, each the first matching event after the one before.
        for position, step in enumerate(steps):
            if position == 0 or step.optional:
                continue
            while cursor < len(events) and not matches(step, events[cursor], threads):
                cursor += 1
            if cursor == len(events) or events[cursor][0] - times[0] > 20_000:
                complete = False
                break
            times[position] = events[cursor][0]
            matched[position] = events[cursor]
            cursor += 1
        if not complete:
            index += 1
            continue
        # Optional steps (a thread already running is not woken): the last matching event between the
        # mandatory steps around them, of the thread that then acted.
        positions = sorted(times)
        for position, step in enumerate(steps):
            if not step.optional:
                continue
            before = max(p for p in positions if p < position)
            after = min(p for p in positions if p > position)
            actor = matched[after][2].get("tid")
            if actor not in role_threads(threads, step.role):
                continue
            candidates = [event for event in events
                          if times[before] <= event[0] <= times[after] and matches(step, event, threads) and event[2]["tid"] == actor]
            if candidates:
                times[position] = candidates[-1][0]
                matched[position] = candidates[-1]
        ordered = sorted(times)
        trip = []
        for previous, position in zip(ordered, ordered[1:]):
            stage = steps[position].stage
            if steps[position].role and steps[position].role.endswith("-any"):
                gateway = steps[position].role[:-len("-any")]
                if matched[position][2]["tid"] not in threads.get(f"{gateway}-tun", set()):
                    stage += ", by the uplink reader"
            trip.append((stage, times[position] - times[previous]))
            if windows is not None and steps[position].kind in ("send", "write"):
                windows.append((stage, times[previous], times[position], matched[position][2]["tid"]))
        found.append(trip)
        index = cursor
    return found


def threads_of(pid, names):
    """The thread ids of process `pid` whose names start with one of `names`."""
    tids = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
        except OSError:
            continue
        if any(comm.startswith(name) for name in names):
            tids.add(int(tid))
    return tids


def record(inside, seconds, count, perf_data, tids, events=EVENTS):
    """Runs c1's pings to c2 under `perf record` on every CPU; returns ping's own output. The system
    calls are traced for the threads `tids` only (perf's own writes of what it records would otherwise
    feed back into the trace)."""
    only_ours = " || ".join(f"common_pid == {tid}" for tid in sorted(tids))
    arguments = []
    for event in events:
        arguments += ["-e", event] + (["--filter", only_ours] if "syscalls:" in event else [])
    recorder = subprocess.Popen(["perf", "record", "-a", "-q", "-o", perf_data] + arguments + ["--", "sleep", str(seconds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ping = inside("c1", f"ping -c {count} -i 0.01 -s {PING_PAYLOAD} -W 1 192.0.2.130", check=False, timeout=seconds + 30)
    finally:
        _, errors = recorder.communicate(timeout=seconds + 60)
    if recorder.returncode != 0:
        raise RuntimeError(f"perf record failed: {errors.decode(errors='replace')[-400:]}")
    return ping


def breakdown(inside, threads, tun, count=300, syscalls=False):
    """Pings c2 from c1 `count` times under perf; returns (stages, trips, ping RTTs in µs, system calls):
    each stage's durations in µs over the round trips found, and with `syscalls` the split of the
    threads' own stages (`syscall_split`), else None. `threads`: each role's thread ids; `tun`: the TUN
    devices' name."""
    with tempfile.TemporaryDirectory(prefix="ipipd-latency.") as scratch:
        data = os.path.join(scratch, "perf.data")
        ping = record(inside, seconds=count * 0.01 + 3, count=count, perf_data=data, tids=set().union(*threads.values()),
                      events=EVENTS + (SYSCALL_EVENTS if syscalls else []))
        script = subprocess.run(["perf", "script", "-i", data, "--ns", "-F", "comm,tid,cpu,time,event,trace"],
                                capture_output=True, text=True, check=True).stdout
    events = parse(script)
    windows = [] if syscalls else None
    trips = round_trips(events, threads, round_trip(tun), windows)
    stages = {}
    for trip in trips:
        for stage, duration in trip:
            stages.setdefault(stage, []).append(duration)
    rtts = [float(value) * 1000 for value in re.findall(r"time=([0-9.]+)", ping)]
    return stages, trips, rtts, (syscall_split(events, windows) if syscalls else None)


def syscall_split(events, windows):
    """For each of the threads' own stages: its commonest sequence of system calls, and the median of each
    piece of it — the kernel's return from the call the thread slept in, each system call, and the user
    space between them — over the round trips that took that sequence. Returns {stage: (pieces, count,
    of)}, pieces as [(name, median µs)]."""
    calls = {}
    for time_us, kind, fields in events:
        if kind == "syscall":
            calls.setdefault(fields["tid"], []).append((time_us, fields["enter"], fields["nr"]))
    sequences = {}
    for stage, start, end, tid in windows:
        own = calls.get(tid, [])
        inside_stage = own[bisect.bisect_left(own, (start,)):bisect.bisect_right(own, (end, 2))]
        # The stage ends as its send's system call begins (that call's own trace events come just after).
        pieces, previous = [], start
        for index, (time_us, enter, nr) in enumerate(inside_stage):
            name = SYSCALL_NAMES.get(nr, f"syscall {nr}")
            if enter:
                pieces.append(("user space", time_us - previous))
            else:
                # The first event a return: the call the thread was in (asleep) when the stage began.
                pieces.append((name if index > 0 else f"{name} (the rest of it, from the stage's start)", time_us - previous))
            previous = time_us
        pieces.append(("user space", end - previous))
        sequences.setdefault(stage, []).append(pieces)
    split = {}
    for stage, found in sequences.items():
        shapes = {}
        for pieces in found:
            shapes.setdefault(tuple(name for name, _ in pieces), []).append([duration for _, duration in pieces])
        shape, durations = max(shapes.items(), key=lambda item: len(item[1]))
        split[stage] = ([(name, statistics.median(column)) for name, column in zip(shape, zip(*durations))], len(durations), len(found))
    return split


def report_syscalls(split):
    """The split of each of the threads' own stages, a line per piece."""
    lines = []
    for stage, (pieces, count, of) in split.items():
        lines.append(f"{stage} — its system calls ({count} of {of} round trips took this sequence):")
        for name, median in pieces:
            lines.append(f"    {name:54} {median:10.1f}")
    return "\n".join(lines)


def report(name, stages, trips, rtts):
    """The table: each stage's median and 90th percentile, its share of the median round trip."""
    if not trips:
        return f"{name}: no complete round trip found in the trace"
    totals = [sum(duration for _, duration in trip) for trip in trips]
    median_total = statistics.median(totals)
    lines = [f"{name}: {len(trips)} round trips traced; c1 -> c2 -> c1 in the kernel's clock: median {median_total:.0f} µs"
             + (f" (ping's own: median {statistics.median(rtts):.0f} µs over {len(rtts)} replies)" if rtts else ""),
             f"{'stage':58} {'median µs':>10} {'p90 µs':>8} {'share':>6}"]
    for stage in dict.fromkeys(stage for trip in trips for stage, _ in trip):
        values = sorted(stages[stage])
        median = statistics.median(values)
        p90 = values[min(len(values) - 1, int(0.9 * (len(values) - 1)))]
        lines.append(f"{stage:58} {median:10.1f} {p90:8.1f} {median / median_total:6.0%}"
                     + (f"   ({len(values)} of {len(trips)})" if len(values) < len(trips) else ""))
    return "\n".join(lines)
