"""Ports on 127.0.0.1: which ones the stack uses, whether one is free, and who holds it."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from .common import HOST, StackError


# Default ports sit below Linux's ephemeral range (32768-60999): a port in that range can be held
# at any moment by some client's outgoing connection, and then a server cannot bind it.
def port_from_env(variable: str, default: int) -> int:
    raw = os.environ.get(variable, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise StackError("config", f"{variable}={raw!r} is not a TCP port (1-65535)")
    return int(raw)


def listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def holds_socket(pid: str, inodes: set[str]) -> bool:
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = str(fd.readlink())
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    return False


def listener_of(port: int) -> str:
    """Who is listening on 127.0.0.1:port, as 'pid N (command)', best effort from /proc."""
    inodes = listening_inodes(port)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and inodes and holds_socket(proc.name, inodes):
            with contextlib.suppress(OSError):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
                return f"pid {proc.name} ({cmd.strip()})"
    return "another process (nothing listens on it: an outgoing connection may hold it)"


def serves_port(pid: int, port: int) -> bool:
    """Whether our process is the one listening on the port (and not a stranger's server that
    happens to answer the health probe there). Unknowable without /proc access: assume yes."""
    inodes = listening_inodes(port)
    if not inodes or not Path(f"/proc/{pid}/fd").exists():
        return True
    try:
        next(Path(f"/proc/{pid}/fd").iterdir(), None)
    except PermissionError:
        return True
    return holds_socket(str(pid), inodes)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick), for a server a script starts."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port
