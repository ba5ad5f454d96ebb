"""Redis: the system's redis-server, without persistence."""

from __future__ import annotations

import shutil
import socket

from .common import HOST, find_tool
from .component import Component
from .ports import port_from_env


class Redis(Component):
    name = "redis"
    start_timeout = 15.0

    def ports(self) -> list[int]:
        return [port_from_env("EVENTFLEET_REDIS_PORT", 26379)]

    def env(self) -> dict[str, str]:
        return {"EVENTFLEET_REDIS_URL": f"redis://{self.address()}/0"}

    def prepare(self) -> None:
        find_tool(
            self.name,
            "redis-server",
            "run `make system-deps` (installs Debian's redis-server package)",
        )
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--bind",
            HOST,
            "--port",
            str(self.ports()[0]),
            "--dir",
            str(self.home),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]

    def probe(self) -> str | None:
        try:
            with socket.create_connection((HOST, self.ports()[0]), timeout=2) as conn:
                conn.sendall(b"PING\r\n")
                reply = conn.recv(64)
        except OSError as error:
            return f"cannot connect: {error.strerror or error}"
        return None if reply.startswith(b"+PONG") else f"unexpected reply {reply[:40]!r}"
