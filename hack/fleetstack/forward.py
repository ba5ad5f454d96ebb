"""A TCP forwarder: pods reach the stack's loopback services through the pod bridge's address.

    python3 -m fleetstack.forward LISTEN_HOST:PORT=TARGET_HOST:PORT ...

The services listen on 127.0.0.1 only, and a pod's 127.0.0.1 is its own. This process listens
on the bridge's host address, which the stack created and nothing outside the machine routes to,
and copies bytes both ways. Kafka advertises its pod listener at the bridge address, so the
metadata a pod receives points back here. One thread per direction of a connection: the traffic
is a test's or a demo's, not a benchmark's.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Sequence

BUFFER = 256 * 1024


def parse_route(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    listen, _, target = text.partition("=")

    def address(part: str) -> tuple[str, int]:
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise SystemExit(f"forward: {text!r} is not LISTEN_HOST:PORT=TARGET_HOST:PORT")
        return host, int(port)

    return address(listen), address(target)


def pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(BUFFER):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        # Half-close so the other side sees the end; then both sockets go once both pumps end.
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def serve_connection(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def listen_on(address: tuple[str, int]) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(address)
    server.listen(128)
    return server


def serve(server: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = server.accept()
        threading.Thread(target=serve_connection, args=(client, target), daemon=True).start()


def main(argv: Sequence[str]) -> int:
    routes = [parse_route(arg) for arg in argv]
    if not routes:
        raise SystemExit(__doc__)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Bind every listener first: a taken port fails the start, not one thread in silence.
    servers = [(listen_on(listen), target) for listen, target in routes]
    threads = [threading.Thread(target=serve, args=pair, daemon=True) for pair in servers]
    for thread in threads:
        thread.start()
    for (host, port), (to_host, to_port) in routes:
        print(f"forwarding {host}:{port} -> {to_host}:{to_port}", flush=True)
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
