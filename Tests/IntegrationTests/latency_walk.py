"""Checks scripts/latency.py's walk of a round trip and its system-call split on a trace written here:
one ping through the benchmark's topology, every event at a known time (µs), in perf script's format.
Prints "ok" when every stage and piece has the duration the trace gives it; fails with the difference."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import latency  # noqa: E402

THREADS = {"A-capture": {11}, "A-tun": {12}, "B-capture": {21}, "B-tun": {22}}
INNER, FRAME, OUTER = latency.INNER, latency.INNER + 14, latency.INNER + 20 + 14
lines = []


def event(time_us, name, rest, tid=0, comm="swapper"):
    lines.append(f"  {comm} {tid:6} [000] {1000 + time_us / 1e6:.9f}: {name}: {rest}")


def device(time_us, kind, dev, length):
    event(time_us, "net:net_dev_queue" if kind == "queue" else "net:netif_receive_skb", f"dev={dev} skbaddr=0x1 len={length}")


def syscall(time_us, tid, number, enter):
    event(time_us, "raw_syscalls:sys_enter" if enter else "raw_syscalls:sys_exit",
          f"NR {number} (5, 0, 0)" if enter else f"NR {number} = 1", tid, "ipipd-capture")


# c1's echo, A's LAN, A's capture thread woken for the TUN device and sending (it reads, then sends).
device(0, "queue", "eth0", FRAME)
device(5, "queue", "tunl", INNER)
event(9, "sched:sched_wakeup", "comm=ipipd-capture pid=11 prio=120 target_cpu=000")
event(12, "sched:sched_switch", "prev_comm=swapper prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=ipipd-capture next_pid=11 next_prio=120")
syscall(14, 11, 7, False)                        # poll returns: 2
syscall(16, 11, 0, True)                         # user space: 2
syscall(19, 11, 0, False)                        # read: 3
event(25, "syscalls:sys_enter_sendmmsg", "fd: 0x8", 11, "ipipd-capture")   # user space: 6
syscall(25.2, 11, 307, True)
device(30, "queue", "eth0", OUTER)
device(34, "queue", "eth1", OUTER)
device(37, "receive", "eth0", OUTER - 14)
# B's capture thread woken for the uplink, decapsulating, writing to its TUN device.
event(60, "sched:sched_wakeup", "comm=ipipd-capture pid=21 prio=120 target_cpu=001")
event(70, "sched:sched_switch", "prev_comm=swapper prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=ipipd-capture next_pid=21 next_prio=120")
syscall(74, 21, 7, False)                        # poll returns: 4
syscall(77, 21, 299, True)                       # user space: 3
syscall(80, 21, 299, False)                      # recvmmsg: 3
event(88, "syscalls:sys_enter_write", "fd: 0x5", 21, "ipipd-capture")      # user space: 8
syscall(88.2, 21, 1, True)
device(90, "receive", "tunl", INNER)
device(92, "queue", "lan0", FRAME)
device(93, "receive", "eth0", INNER)
device(100, "queue", "eth0", FRAME)
# The reply: B's capture thread (still in its write) reads and sends it; A's capture thread delivers it.
device(104, "queue", "tunl", INNER)
event(110, "syscalls:sys_enter_sendmmsg", "fd: 0x8", 21, "ipipd-capture")
device(113, "queue", "eth0", OUTER)
device(116, "queue", "eth0", OUTER)
device(119, "receive", "eth0", OUTER - 14)
event(130, "sched:sched_wakeup", "comm=ipipd-capture pid=11 prio=120 target_cpu=000")
event(140, "sched:sched_switch", "prev_comm=swapper prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=ipipd-capture next_pid=11 next_prio=120")
event(150, "syscalls:sys_enter_write", "fd: 0x5", 11, "ipipd-capture")
device(152, "receive", "tunl", INNER)
device(153, "queue", "lan0", FRAME)
device(154, "receive", "eth0", INNER)

events = latency.parse("\n".join(lines))
windows = []
trips = latency.round_trips(events, THREADS, latency.round_trip("tunl"), windows)
assert len(trips) == 1, f"round trips found: {len(trips)}"
stages = dict(trips[0])
expected = {"A: TUN reader woken, by the uplink reader": 4, "A: TUN reader on a CPU (wakeup latency), by the uplink reader": 3,
            "A: TUN read and encapsulation, by the uplink reader": 13, "B: uplink reader woken": 23,
            "B: uplink read and decapsulation": 18, "c2 answers": 7, "B: TUN read and encapsulation, by the uplink reader": 6,
            "A: uplink reader woken": 11, "A: uplink read and decapsulation": 10, "c1: LAN to the host": 1}
for stage, duration in expected.items():
    assert abs(stages[stage] - duration) < 1e-3, f"{stage}: {stages.get(stage)} µs, the trace says {duration}"
assert abs(sum(stages.values()) - 154) < 1e-3, f"the stages add up to {sum(stages.values())} µs, not 154"

split = latency.syscall_split(events, windows)
pieces, count, of = split["B: uplink read and decapsulation"]
assert (count, of) == (1, 1)
assert [(name, round(duration, 3)) for name, duration in pieces] == [
    ("poll (the rest of it, from the stage's start)", 4), ("user space", 3), ("recvmmsg", 3), ("user space", 8)], pieces
pieces, _, _ = split["A: TUN read and encapsulation, by the uplink reader"]
assert [(name, round(duration, 3)) for name, duration in pieces] == [
    ("poll (the rest of it, from the stage's start)", 2), ("user space", 2), ("read", 3), ("user space", 6)], pieces
print("ok")
