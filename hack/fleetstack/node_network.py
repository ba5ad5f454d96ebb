"""The node's network: a bridge the stack creates for the pods, and the forwarder through which
pods reach the stack's services at the bridge's host address.

Nothing here leaves the machine. The bridge is a local device with a private subnet, no route
to the outside and no masquerading; the forwarder listens only on the bridge's address.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from .common import REPO, StackError
from .component import Component

NODE_NAME = "eventfleet-node"


def bridge_name() -> str:
    name = os.environ.get("EVENTFLEET_NODE_BRIDGE", "eventfleet0")
    if not 0 < len(name) <= 15 or not name.replace("-", "").isalnum():
        raise StackError("pod-network", f"EVENTFLEET_NODE_BRIDGE={name!r} is not a device name")
    return name


def pod_subnet() -> ipaddress.IPv4Network:
    raw = os.environ.get("EVENTFLEET_NODE_SUBNET", "10.88.0.0/24")
    try:
        subnet = ipaddress.IPv4Network(raw)
    except ValueError as error:
        raise StackError("pod-network", f"EVENTFLEET_NODE_SUBNET={raw!r}: {error}") from None
    if not subnet.is_private or subnet.prefixlen > 28:
        raise StackError(
            "pod-network", f"EVENTFLEET_NODE_SUBNET={raw!r} must be a private /28 or larger"
        )
    return subnet


def node_address() -> str:
    """The bridge's host address: the pods' gateway, and where they find the stack."""
    return str(next(pod_subnet().hosts()))


def ensure_bridge() -> None:
    if os.geteuid() != 0:
        raise StackError("pod-network", "the node needs root (a bridge, containers, mounts)")
    ip = shutil.which("ip")
    if ip is None:
        raise StackError("pod-network", "ip not found", fix="apt-get install iproute2")
    name, address = bridge_name(), f"{node_address()}/{pod_subnet().prefixlen}"
    if not Path(f"/sys/class/net/{name}").exists():
        run([ip, "link", "add", name, "type", "bridge"], "creating the bridge")
    shown = subprocess.run(
        [ip, "-4", "-o", "addr", "show", "dev", name], capture_output=True, text=True, check=False
    ).stdout
    if f" {address} " not in shown:
        run([ip, "addr", "add", address, "dev", name], f"giving {name} the address {address}")
    run([ip, "link", "set", name, "up"], f"bringing {name} up")


def run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(
            "pod-network",
            f"{what} failed: {done.stderr.strip() or done.returncode}",
            fix="the node needs root and a kernel with bridge support (modprobe bridge)",
        )


class PodNetwork(Component):
    """The bridge, and a forwarder on its host address to each service a pod needs."""

    name = "pod-network"
    start_timeout = 20.0
    stop_grace = 5.0

    def __init__(self, routes: dict[str, int]) -> None:
        super().__init__()
        self.routes = routes  # service name -> its port on 127.0.0.1 (the same port on the bridge)

    def ports(self) -> list[int]:
        return []  # its ports are on the bridge's address, checked by health() itself

    def address(self) -> str:
        return f"{node_address()} ({bridge_name()})"

    def prepare(self) -> None:
        ensure_bridge()

    def command(self) -> list[str]:
        gateway = node_address()
        return [
            sys.executable,
            str(REPO / "hack" / "fleetstack" / "forward.py"),
            *(f"{gateway}:{port}=127.0.0.1:{port}" for port in self.routes.values()),
        ]

    def probe(self) -> str | None:
        for service, port in self.routes.items():
            try:
                socket.create_connection((node_address(), port), timeout=2).close()
            except OSError as error:
                return f"{service} is not reachable at {node_address()}:{port}: {error}"
        return None

    def env(self) -> dict[str, str]:
        return {"EVENTFLEET_NODE_ADDRESS": node_address()}
