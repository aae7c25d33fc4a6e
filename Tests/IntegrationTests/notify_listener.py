#!/usr/bin/env python3
"""A stand-in for systemd's notify socket: receives sd_notify datagrams on PATH and writes each one,
newlines escaped, as a line to OUTPUT. Runs until killed or for at most 60 s."""
import os
import socket
import sys
import time

path, output = sys.argv[1], sys.argv[2]
if os.path.exists(path):
    os.unlink(path)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)
sock.settimeout(0.5)
deadline = time.time() + 60
with open(output, "a", buffering=1) as out:
    out.write("listening\n")
    while time.time() < deadline:
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        out.write(data.decode().replace("\n", "|") + "\n")
