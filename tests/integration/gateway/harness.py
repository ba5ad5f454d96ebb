"""Run the real gateway (`eventfleet gateway` in a subprocess) and talk to it over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError

from tests.fixtures.net import free_port
from tests.fixtures.scripts import hack_module

# SIGTERM, then SIGKILL after 30 s: the stack's own way to stop a child (hack/fleetstack).
stop_child = hack_module("fleetstack.processes").stop_child


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Gateway:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            # The server may answer (413) and close before the whole body is sent: read that.
            with suppress(BrokenPipeError, ConnectionResetError):
                connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Answer(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def post(self, path: str, value: object, headers: dict[str, str] | None = None) -> Answer:
        return self.request(
            "POST",
            path,
            json.dumps(value).encode(),
            {"content-type": "application/json", **(headers or {})},
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/readyz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gateway not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def running_gateway(
    tmp_path: Path, bootstrap: str, topic: str, *flags: str, wait: str = "ready"
) -> Iterator[Gateway]:
    """`wait`: "ready" (Kafka reachable), or "alive" (only /healthz)."""
    port = free_port()
    log = tmp_path / f"gateway-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFLEET_GATEWAY_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "eventfleet.cli",
                "gateway",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--kafka-bootstrap",
                bootstrap,
                "--topic",
                topic,
                *flags,
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    gateway = Gateway(port, process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"gateway exited {process.returncode}:\n{gateway.output()}")
            try:
                if gateway.request("GET", "/healthz", timeout=2).status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        if wait == "ready":
            gateway.wait_ready()
        yield gateway
    finally:
        stop_child(process)


def consume_all(
    bootstrap: str, topic: str, group: str, expected: int, timeout: float = 30
) -> list[tuple[bytes | None, dict[str, Any]]]:
    """Every record of the topic: waits for `expected`, then 2 s more for any extra."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found: list[tuple[bytes | None, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    extra_until: float | None = None
    try:
        while time.monotonic() < (extra_until or deadline):
            message = consumer.poll(0.5)
            if message is None:
                pass
            elif (error := message.error()) is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"consumer error: {error}")
            else:
                value = message.value()
                if value is None:
                    raise AssertionError("a record without a value")
                found.append((message.key(), json.loads(value)))
            if len(found) >= expected and extra_until is None:
                extra_until = time.monotonic() + 2
    finally:
        consumer.close()
    return found


@contextmanager
def silent_listener(port: int) -> Iterator[None]:
    """Accepts connections and never answers: a hung broker."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        server.close()
        for connection in held:
            connection.close()
