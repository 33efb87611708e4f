"""A user-space delay line between TUN devices: added round-trip time where `tc netem` is missing.

    python bench/delayline.py HOSTIF:NSIF [HOSTIF:NSIF ...]

For each pair it creates two TUN devices (IFF_TUN, no packet info) and copies every IP packet
read from one to the other after a fixed one-way delay (0 until told otherwise), in both
directions, in arrival order. The caller moves NSIF into a network namespace and gives both ends
point-to-point addresses (bench/hosts.py does): the kernel's TCP runs unchanged on both sides
(slow start, windows, retransmissions), only the wire is slower, as with `netem delay` on a veth.
It prints `ready` once the devices exist, then reads commands on stdin, one a line:
`delay <one-way ms>` (answered `ok`); end of input stops it (its devices go with it).
Used by bench/hosts.py on kernels built without CONFIG_NET_SCH_NETEM.
"""

from __future__ import annotations

import collections
import fcntl
import os
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_PACKET = 65536


def open_tun(name: str) -> int:
    """A new TUN device named `name`, non-blocking; it lives as long as the descriptor."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main() -> None:
    peer: dict[int, int] = {}  # fd -> the fd its packets are written to
    for spec in sys.argv[1:]:
        a, b = (open_tun(n) for n in spec.split(":"))
        peer[a], peer[b] = b, a
    # per output fd: (due time, packet), in arrival order (one delay for all: due order too)
    out: dict[int, collections.deque[tuple[float, bytes]]] = {
        fd: collections.deque() for fd in peer
    }
    delay = 0.0
    stdin = sys.stdin.fileno()
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        heads = [q[0][0] for q in out.values() if q]
        timeout = max(0.0, min(heads) - now) if heads else None
        readable, _, _ = select.select([stdin, *peer], [], [], timeout)
        for fd in readable:
            if fd == stdin:
                line = sys.stdin.readline()
                if not line:
                    return
                cmd = line.split()
                if cmd[:1] == ["delay"]:
                    delay = float(cmd[1]) / 1000.0
                print("ok", flush=True)
                continue
            q = out[peer[fd]]
            while True:
                try:
                    pkt = os.read(fd, MAX_PACKET)
                except BlockingIOError:
                    break
                except OSError:  # the device was deleted under us: the run is ending
                    return
                q.append((time.monotonic() + delay, pkt))
        now = time.monotonic()
        for fd, q in out.items():
            while q and q[0][0] <= now:
                try:
                    os.write(fd, q[0][1])
                except BlockingIOError:
                    break
                except OSError:
                    pass  # the device is going away, or the packet was refused: a drop
                q.popleft()


if __name__ == "__main__":
    main()
