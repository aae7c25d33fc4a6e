#!/usr/bin/env bash
# Fuzzes the packet path (Fuzz/PacketPathFuzzer.swift) with libFuzzer for a bounded time or number of
# inputs, starting from the committed seed corpus. Needs clang's libFuzzer runtime, which the Swift
# toolchain ships. Not part of CI.
#
# Usage: scripts/fuzz.sh [-runs=N] [-max_total_time=SECONDS] [other libFuzzer flags]
#   default: -max_total_time=60
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;; esac

out=.build-fuzz
mkdir -p "$out" "$out/corpus"
# The pure core without the YAML loader (the fuzzer builds its config in code).
sources=$(find Sources/IPIPCore -name '*.swift' ! -name 'ConfigLoader.swift' ! -name 'ConfigValidator.swift')
swiftc -O -g -sanitize=fuzzer,address -parse-as-library -module-name PacketPathFuzzer \
    $sources Fuzz/PacketPathFuzzer.swift -o "$out/packet-path-fuzzer"

args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(-max_total_time=60)
# New inputs go to the working corpus under .build-fuzz; the committed seeds stay as they are.
exec "$out/packet-path-fuzzer" -print_final_stats=1 "${args[@]}" "$out/corpus" Fuzz/corpus
