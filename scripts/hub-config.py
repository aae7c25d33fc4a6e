#!/usr/bin/env python3
"""Writes a hub gateway's config with many peers, for scale measurements (scripts/scale.sh).

Usage: scripts/hub-config.py PEERS [--prefixes-per-peer N] [--changed-percent P] > hub.yaml

Only benchmark addresses (RFC 2544, 198.18.0.0/15): the hub is 198.19.255.254 on its uplink, peer k's
endpoint is 198.19.(k // 250).(k % 250 + 1), and its inner prefixes are carved from 198.18.0.0/16 —
distinct /32s, then /31s, then /30s of the same space (nested prefixes are legal: the longest match
wins), up to 114,688 prefixes. --changed-percent P gives every (100 / P)-th peer a new endpoint,
198.19.(128 + k // 250).(k % 250 + 1), and new prefixes (from the space the others leave): a reload that
touches P % of the peers.
"""
import argparse
import sys

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("peers", type=int)
parser.add_argument("--prefixes-per-peer", type=int, default=10)
parser.add_argument("--changed-percent", type=float, default=0)
args = parser.parse_args()

def prefixes():
    """Distinct prefixes of 198.18.0.0/16: every /32, then every /31, then every /30."""
    for length in (32, 31, 30):
        step = 1 << (32 - length)
        for offset in range(0, 1 << 16, step):
            yield f"198.18.{offset >> 8}.{offset & 255}/{length}"

total = args.peers * args.prefixes_per_peer
if total > 114_688 or args.peers > 250 * 128:
    sys.exit("too many peers or prefixes for 198.18.0.0/15")
pool = prefixes()
assigned = [[next(pool) for _ in range(args.prefixes_per_peer)] for _ in range(args.peers)]
changed = set()
if args.changed_percent > 0:
    every = max(1, round(100 / args.changed_percent))
    changed = set(range(0, args.peers, every))
    for k in sorted(changed):
        assigned[k] = [next(pool) for _ in range(args.prefixes_per_peer)]

out = [f"# A hub with {args.peers} peers and {total} prefixes (scripts/hub-config.py"
       + (f", {args.changed_percent:g} % of the peers changed" if changed else "") + ").",
       "uplink:", "  interface: eth0", "  address: 198.19.255.254", "", "tunnel:", "  name: tunl", "", "peers:"]
for k in range(args.peers):
    third = (128 if k in changed else 0) + k // 250
    out.append(f"  - name: site-{k}")
    out.append(f"    remote: 198.19.{third}.{k % 250 + 1}")
    out.append("    routes: [" + ", ".join(assigned[k]) + "]")
sys.stdout.write("\n".join(out) + "\n")
