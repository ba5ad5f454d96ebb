"""Apache Kafka in KRaft mode: one node, its jars fetched once by Maven into the cache."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import struct
import time
from pathlib import Path

from .common import CACHE_DIR, HOST, REPO, StackError, display, find_tool, say, spinner
from .component import Component
from .kafka_secured import SecuredListener
from .node_network import node_address
from .ports import port_from_env
from .processes import run_quiet


def kafka_api_versions(port: int, timeout: float = 2.0) -> str | None:
    """One Kafka ApiVersions (v0) round trip: None when the broker answers without error."""
    client_id = b"eventfleet-stack"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as conn:
            conn.sendall(struct.pack(">i", len(body)) + body)
            header = conn.recv(4, socket.MSG_WAITALL)
            if len(header) < 4:
                return "connection closed without an answer"
            payload = conn.recv(min(struct.unpack(">i", header)[0], 65536), socket.MSG_WAITALL)
    except OSError as error:
        return f"cannot connect: {error.strerror or error}"
    if len(payload) < 6:
        return "short ApiVersions answer"
    correlation, error_code = struct.unpack(">ih", payload[:6])
    if correlation != 7:
        return "answer does not match the request"
    return None if error_code == 0 else f"ApiVersions error code {error_code}"


class Kafka(Component):
    """Apache Kafka in KRaft mode (one node, broker and controller), jars from Maven Central."""

    name = "kafka"
    start_timeout = 90.0
    pom = REPO / "hack" / "kafka" / "pom.xml"

    def ports(self) -> list[int]:
        broker = port_from_env("EVENTFLEET_KAFKA_PORT", 29092)
        return [
            broker,
            port_from_env("EVENTFLEET_KAFKA_CONTROLLER_PORT", 29093),
            # Default: the broker's port + 2, so stacks moved to other ports stay apart.
            port_from_env("EVENTFLEET_KAFKA_SASL_PORT", broker + 2),
            port_from_env("EVENTFLEET_KAFKA_SSL_PORT", broker + 3),
            # Pods' listener: bound on loopback, advertised at the pod bridge's address, where
            # the node's forwarder (pod-network) listens. Unused while the node is off.
            port_from_env("EVENTFLEET_KAFKA_POD_PORT", broker + 4),
        ]

    @property
    def pod_port(self) -> int:
        return self.ports()[4]

    @property
    def secured(self) -> SecuredListener:
        return SecuredListener(self.home, self.ports()[2], self.log, self.ports()[3])

    def env(self) -> dict[str, str]:
        return {
            "EVENTFLEET_KAFKA_BOOTSTRAP": self.address(),
            **self.secured.env(),
            # What a pod on the node uses (through the pod network's forwarder).
            "EVENTFLEET_KAFKA_POD_BOOTSTRAP": f"{node_address()}:{self.pod_port}",
        }

    def up(self) -> str:
        done = super().up()
        self.secured.ensure_scram_user(self.java_base(), self.address(), self.data)
        return done

    @property
    def version(self) -> str:
        found = re.search(r"<kafka.version>([^<]+)</kafka.version>", self.pom.read_text())
        if found is None:
            raise StackError(self.name, f"no <kafka.version> in {display(self.pom)}")
        return found.group(1)

    @property
    def libs(self) -> Path:
        digest = hashlib.sha256(self.pom.read_bytes()).hexdigest()[:10]
        return CACHE_DIR / "kafka" / f"{self.version}-{digest}" / "libs"

    @property
    def data(self) -> Path:
        return self.home / "data"

    def java(self) -> str:
        return find_tool(
            self.name, "java", "install a Java 17+ runtime (Debian: openjdk-17-jre-headless)"
        )

    def fetch_jars(self) -> None:
        if (self.libs / ".complete").exists():
            return
        mvn = find_tool(
            self.name,
            "mvn",
            "install Maven (Debian: maven)",
            why=" (needed once to fetch the jars)",
        )
        say(
            f"  kafka: downloading Apache Kafka {self.version} jars from Maven Central into "
            f"{self.libs} (first run only, about a minute)"
        )
        started = time.monotonic()
        partial = self.libs.with_name("libs.partial")
        shutil.rmtree(partial, ignore_errors=True)
        with spinner("kafka: maven"):
            run_quiet(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(self.pom),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={partial}",
                    "-DincludeScope=runtime",
                ],
                self.home / "maven.log",
                self.name,
                "the Maven download",
                timeout=900,
            )
        (partial / ".complete").write_text(self.version)
        shutil.rmtree(self.libs, ignore_errors=True)
        partial.rename(self.libs)
        say(f"  kafka: jars ready in {time.monotonic() - started:.0f}s")

    def write_config(self) -> Path:
        broker, controller, _sasl, _ssl, pods = self.ports()
        config = self.home / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers={HOST}:{controller}",
                    (
                        f"listeners=PLAINTEXT://{HOST}:{broker},CONTROLLER://{HOST}:{controller},"
                        f"{self.secured.listeners()},PODS://{HOST}:{pods}"
                    ),
                    (
                        f"advertised.listeners=PLAINTEXT://{HOST}:{broker},"
                        f"{self.secured.listeners()},PODS://{node_address()}:{pods}"
                    ),
                    "controller.listener.names=CONTROLLER",
                    (
                        "listener.security.protocol.map="
                        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PODS:PLAINTEXT,"
                        f"{self.secured.protocol_map()}"
                    ),
                    *self.secured.server_properties(),
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.data}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    # Topics are the operator's job: a typo must not silently create one.
                    "auto.create.topics.enable=false",
                    "delete.topic.enable=true",
                    "",
                ]
            )
        )
        (self.home / "log4j2.properties").write_text(
            "\n".join(
                [
                    "status = warn",
                    "appender.out.type = Console",
                    "appender.out.name = out",
                    "appender.out.layout.type = PatternLayout",
                    "appender.out.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = INFO",
                    "rootLogger.appenderRef.out.ref = out",
                    "logger.state.name = state.change.logger",
                    "logger.state.level = WARN",
                    "",
                ]
            )
        )
        return config

    def java_base(self) -> list[str]:
        return [
            self.java(),
            "-Xms256m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
        ]

    def prepare(self) -> None:
        self.java()
        self.home.mkdir(parents=True, exist_ok=True)
        self.fetch_jars()
        self.secured.prepare()
        config = self.write_config()
        meta = self.data / "meta.properties"
        if meta.is_file():
            if "cluster.id=" not in meta.read_text(errors="replace"):
                raise StackError(
                    self.name,
                    f"{display(meta)} is damaged (no cluster.id)",
                    self.log,
                    "`hack/stack reset kafka` deletes the broker's data",
                )
            return
        if self.data.exists() and any(self.data.iterdir()):
            raise StackError(
                self.name,
                f"{display(self.data)} holds files but no meta.properties",
                self.log,
                "`hack/stack reset kafka` deletes the broker's data",
            )
        say("  kafka: formatting KRaft storage")
        cluster_id = kafka_cluster_id()
        run_quiet(
            [
                *self.java_base(),
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                # One argument: a random id may start with "-", which would read as an option.
                f"--cluster-id={cluster_id}",
                "-c",
                str(config),
            ],
            self.log,
            self.name,
            "storage format",
            timeout=120,
        )

    def command(self) -> list[str]:
        return [*self.java_base(), "kafka.Kafka", str(self.home / "server.properties")]

    def probe(self) -> str | None:
        problem = kafka_api_versions(self.ports()[0])
        listeners = (("SASL_SSL", 2), ("SSL", 3), ("pods' PLAINTEXT", 4))
        for name, index in listeners:
            if problem is None and not _listens(self.ports()[index]):
                return f"the {name} listener on port {self.ports()[index]} is not open"
        return problem


def _listens(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=2).close()
    except OSError:
        return False
    return True


def kafka_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as Kafka's Uuid)."""
    import base64

    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
