#!/usr/bin/env python3
"""The local stack: real PostgreSQL, Redis and Apache Kafka on 127.0.0.1, owned by this script.

    hack/stack up       start what is not running, reuse what is healthy, repair what is half dead
    hack/stack status   one line per component with its health (exit 1 if any is unhealthy)
    hack/stack env      shell exports: the one contract tests, benchmarks and scripts read
    hack/stack down     stop exactly the processes this stack started
    hack/stack reset C  stop component C (or `all`) and delete its data

Everything lives under `.stack/` in the repository (git-ignored): one folder per component with
its data, its log and a pid file. Downloads and builds are cached outside the repository (in
`$EVENTFLEET_CACHE`, default `~/.cache/eventfleet`), keyed by version, so a fresh clone reuses them.

Standard library only: it must run before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypedDict

REPO = Path(__file__).resolve().parent.parent
STACK_DIR = Path(os.environ.get("EVENTFLEET_STACK_DIR", REPO / ".stack")).resolve()
CACHE_DIR = Path(
    os.environ.get("EVENTFLEET_CACHE", Path.home() / ".cache" / "eventfleet")
).resolve()
HOST = "127.0.0.1"


class StackError(Exception):
    """A component could not be brought up. The message names the component, log and fix."""

    def __init__(
        self, component: str, problem: str, log: Path | None = None, fix: str = ""
    ) -> None:
        self.component = component
        self.problem = problem
        self.log = log
        self.fix = fix
        super().__init__(f"{component}: {problem}")

    def render(self) -> str:
        lines = [f"✗ {self.component}: {self.problem}"]
        if self.log is not None:
            lines.append(f"  log: {display(self.log)}")
            tail = log_tail(self.log, 12)
            if tail:
                lines.append("  last lines of the log:")
                lines.extend(f"    | {line}" for line in tail)
        if self.fix:
            lines.append(f"  likely fix: {self.fix}")
        return "\n".join(lines)


def display(path: Path) -> str:
    """A path as a person wants to read it: relative to the repository when inside it."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO))
    return str(path)


def log_tail(path: Path, count: int) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16_384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-count:]


def say(message: str) -> None:
    print(message, flush=True)


# Default ports sit below Linux's ephemeral range (32768-60999): a port in that range can be held
# at any moment by some client's outgoing connection, and then a server cannot bind it.
def port_from_env(variable: str, default: int) -> int:
    raw = os.environ.get(variable, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise StackError("config", f"{variable}={raw!r} is not a TCP port (1-65535)")
    return int(raw)


# ----------------------------------------------------------------------------------------------
# Processes the stack owns. A pid file records the pid *and* the kernel's start time of that
# process, so a recycled pid that now belongs to something else is never signalled.


@dataclass(frozen=True)
class OwnedProcess:
    pid: int
    start_ticks: int

    @staticmethod
    def start_ticks_of(pid: int) -> int | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # Field 22 (starttime) counted after the parenthesised command name, which may hold spaces.
        return int(stat.rsplit(")", 1)[1].split()[19])

    @classmethod
    def of(cls, pid: int) -> OwnedProcess | None:
        ticks = cls.start_ticks_of(pid)
        return None if ticks is None else cls(pid, ticks)

    def alive(self) -> bool:
        if self.start_ticks_of(self.pid) != self.start_ticks:
            return False
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            return state != "Z"
        return False

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM, wait up to the grace period, then SIGKILL the whole process group."""
        for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
            if not self.alive():
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self.alive():
                time.sleep(0.1)


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


class DropPrivileges(TypedDict, total=False):
    """subprocess arguments that run a child as an unprivileged service user."""

    user: str
    group: str
    extra_groups: list[str]


def run_quiet(
    cmd: Sequence[str],
    log: Path,
    component: str,
    what: str,
    *,
    timeout: float,
    stdin_bytes: bytes | None = None,
    privileges: DropPrivileges | None = None,
) -> None:
    """Run a preparation step, its output appended to the component's log; raise on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {shlex.join(cmd)}\n".encode())
        out.flush()
        try:
            code = subprocess.run(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                input=stdin_bytes,
                timeout=timeout,
                check=False,
                **(privileges or {}),
            ).returncode
        except subprocess.TimeoutExpired:
            raise StackError(component, f"{what} timed out", log) from None
    if code != 0:
        raise StackError(component, f"{what} failed (exit {code})", log)


# ----------------------------------------------------------------------------------------------
# Components. Each knows how to prepare itself (install checks, downloads, data init), the
# command that runs it in the foreground, and how to tell that it is healthy.


class Component:
    name: ClassVar[str]
    start_timeout: ClassVar[float] = 60.0
    stop_grace: ClassVar[float] = 20.0
    run_as: ClassVar[str | None] = None  # user to drop to when started as root

    def __init__(self) -> None:
        self.home = STACK_DIR / self.name
        self.log = self.home / f"{self.name}.log"
        self.pidfile = self.home / "pid.json"

    # What a component provides.
    def ports(self) -> list[int]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Idempotent: install checks, downloads and data initialisation before the first start."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def probe(self) -> str | None:
        """None when healthy, else what is wrong (one short line)."""
        raise NotImplementedError

    def address(self) -> str:
        return f"{HOST}:{self.ports()[0]}"

    def health(self, proc: OwnedProcess) -> str | None:
        """The probe, plus: the answer must come from our process, not another on the port."""
        if not serves_port(proc.pid, self.ports()[0]):
            return f"port {self.ports()[0]} is served by {listener_of(self.ports()[0])}, not by us"
        return self.probe()

    def env(self) -> dict[str, str]:
        return {}

    def start_fix(self) -> str:
        return f"read the log; if the data is damaged, `hack/stack reset {self.name}` wipes it"

    # Shared machinery.
    def owned(self) -> OwnedProcess | None:
        try:
            data = json.loads(self.pidfile.read_text())
            return OwnedProcess(int(data["pid"]), int(data["start_ticks"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            # A damaged pid file owns nothing we could safely signal.
            self.pidfile.unlink(missing_ok=True)
            return None

    def running(self) -> OwnedProcess | None:
        proc = self.owned()
        return proc if proc is not None and proc.alive() else None

    def privileges(self) -> DropPrivileges:
        if self.run_as is None or os.geteuid() != 0:
            return {}
        return {"user": self.run_as, "group": self.run_as, "extra_groups": []}

    def chown_home(self) -> None:
        if self.run_as is not None and os.geteuid() == 0:
            for path in [self.home, *self.home.rglob("*")]:
                shutil.chown(path, self.run_as, self.run_as)

    def launch(self) -> OwnedProcess:
        for port in self.ports():
            if not port_is_free(port):
                raise StackError(
                    self.name,
                    f"port {HOST}:{port} is already in use by {listener_of(port)}",
                    fix="stop that process, or choose other ports through the "
                    "EVENTFLEET_*_PORT variables (see `hack/stack env`)",
                )
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(
                f"\n==== {time.strftime('%F %T')} start: {shlex.join(self.command())}\n".encode()
            )
            out.flush()
            try:
                child = subprocess.Popen(
                    self.command(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.home,
                    start_new_session=True,
                    **self.privileges(),
                )
            except OSError as error:
                raise StackError(self.name, f"cannot execute: {error}", self.log) from error
        proc = OwnedProcess.of(child.pid)
        if proc is None:
            raise StackError(self.name, "exited at once", self.log, self.start_fix())
        self.pidfile.write_text(json.dumps({"pid": proc.pid, "start_ticks": proc.start_ticks}))
        return proc

    def wait_healthy(self, proc: OwnedProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        problem = "no answer yet"
        while time.monotonic() < deadline:
            if not proc.alive():
                self.pidfile.unlink(missing_ok=True)
                raise StackError(
                    self.name, "the process exited while starting", self.log, self.start_fix()
                )
            found = self.health(proc)
            if found is None:
                return
            problem = found
            time.sleep(0.25)
        proc.stop(self.stop_grace)
        self.pidfile.unlink(missing_ok=True)
        raise StackError(
            self.name,
            f"not healthy after {timeout:.0f}s ({problem}); stopped it",
            self.log,
            self.start_fix(),
        )

    def up(self) -> str:
        """Bring the component to healthy; return what was done, for the progress line."""
        proc = self.running()
        if proc is not None:
            problem = self.health(proc)
            if problem is None:
                return f"reused (pid {proc.pid})"
            # Maybe still starting (a previous `up` was interrupted): give it its start time.
            try:
                self.wait_healthy(proc, min(self.start_timeout, 20.0))
            except StackError:
                say(f"  {self.name}: running but unhealthy ({problem}); restarting it")
            else:
                return f"reused after it finished starting (pid {proc.pid})"
            proc.stop(self.stop_grace)
        elif self.pidfile.exists():
            say(f"  {self.name}: found dead (stale pid file); starting it again")
            self.pidfile.unlink(missing_ok=True)
        self.prepare()
        proc = self.launch()
        self.wait_healthy(proc, self.start_timeout)
        return f"started (pid {proc.pid})"

    def down(self) -> bool:
        proc = self.running()
        if proc is not None:
            proc.stop(self.stop_grace)
        self.pidfile.unlink(missing_ok=True)
        return proc is not None

    def status(self) -> tuple[bool, str]:
        proc = self.running()
        if proc is None:
            return False, "not running"
        problem = self.health(proc)
        if problem is not None:
            return False, f"unhealthy: {problem} (pid {proc.pid})"
        return True, f"healthy (pid {proc.pid})"


def find_postgres_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    if not candidates:
        raise StackError(
            "postgres",
            "PostgreSQL server binaries not found in /usr/lib/postgresql",
            fix="run `make system-deps` (installs Debian's postgresql package)",
        )
    return candidates[0].parent


class Postgres(Component):
    name = "postgres"
    run_as = "postgres"  # the server refuses to run as root
    start_timeout = 30.0
    user = "eventfleet"
    password = "eventfleet"  # loopback-only development database  # noqa: S105
    database = "eventfleet"

    def __init__(self) -> None:
        super().__init__()
        if self.home.is_symlink():  # relocated earlier, see relocate_if_unreachable
            self.rehome(self.home.resolve())

    def rehome(self, home: Path) -> None:
        self.home = home
        self.log = home / f"{self.name}.log"
        self.pidfile = home / "pid.json"

    def relocate_if_unreachable(self) -> None:
        """The server runs as user postgres, which may not be able to enter the checkout (a CI
        clone under a 0700 folder, say). Then its folder lives in /var/tmp, linked from .stack/."""
        if os.geteuid() != 0 or self.home.exists() or traversable_by_others(STACK_DIR):
            return
        digest = hashlib.sha256(str(STACK_DIR).encode()).hexdigest()[:10]
        target = Path("/var/tmp") / f"eventfleet-stack-{digest}" / self.name  # noqa: S108
        target.mkdir(parents=True, exist_ok=True)
        STACK_DIR.mkdir(parents=True, exist_ok=True)
        self.home.symlink_to(target)
        say(f"  postgres: {display(STACK_DIR)} is closed to user postgres; data kept in {target}")
        self.rehome(target)

    def ports(self) -> list[int]:
        return [port_from_env("EVENTFLEET_POSTGRES_PORT", 25432)]

    @property
    def data(self) -> Path:
        return self.home / "data"

    def dsn(self, database: str | None = None) -> str:
        return (
            f"postgresql://{self.user}:{self.password}@{self.address()}/{database or self.database}"
        )

    def env(self) -> dict[str, str]:
        return {"EVENTFLEET_POSTGRES_DSN": self.dsn()}

    def prepare(self) -> None:
        bindir = find_postgres_bin()
        self.relocate_if_unreachable()
        if os.geteuid() == 0 and not traversable_by_others(self.home.parent):
            raise StackError(
                self.name,
                f"user postgres cannot enter {self.home.parent}",
                fix=f"`hack/stack reset postgres`, or `chmod o+x` the folders above {self.home}",
            )
        if (self.data / "PG_VERSION").is_file():
            return
        if self.data.exists() and any(self.data.iterdir()):
            raise StackError(
                self.name,
                f"{display(self.data)} holds files but no PG_VERSION: "
                "the data directory is damaged",
                self.log,
                "`hack/stack reset postgres` deletes it and starts afresh",
            )
        say("  postgres: initialising a new cluster")
        self.home.mkdir(parents=True, exist_ok=True)
        pwfile = self.home / "pwfile"
        pwfile.write_text(self.password + "\n")
        (self.home / "run").mkdir(exist_ok=True)
        self.chown_home()
        run_quiet(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            self.log,
            self.name,
            "initdb",
            timeout=120,
            privileges=self.privileges(),
        )
        pwfile.unlink()
        # Single-user mode creates the application database before any network listener exists.
        run_quiet(
            [str(bindir / "postgres"), "--single", "-D", str(self.data), "postgres"],
            self.log,
            self.name,
            "creating the eventfleet database",
            stdin_bytes=f"CREATE DATABASE {self.database};\n".encode(),
            timeout=60,
            privileges=self.privileges(),
        )

    def command(self) -> list[str]:
        bindir = find_postgres_bin()
        return [
            str(bindir / "postgres"),
            "-D",
            str(self.data),
            "-c",
            f"listen_addresses={HOST}",
            "-p",
            str(self.ports()[0]),
            "-c",
            f"unix_socket_directories={self.home / 'run'}",
            # A disposable development database: durability traded for speed.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]

    def probe(self) -> str | None:
        psql = find_postgres_bin() / "psql"
        try:
            result = subprocess.run(
                [str(psql), self.dsn(), "-tAc", "select 1"],
                capture_output=True,
                timeout=5,
                check=False,
                env={**os.environ, "PGCONNECT_TIMEOUT": "3"},
            )
        except subprocess.TimeoutExpired:
            return "no answer within 5s"
        if result.returncode == 0 and result.stdout.strip() == b"1":
            return None
        return (result.stderr.decode().strip().splitlines() or ["no answer"])[-1]


def traversable_by_others(path: Path) -> bool:
    """Whether a user other than the owner may enter every folder from / down to path."""
    return all(folder.stat().st_mode & 0o001 for folder in [path, *path.parents] if folder.exists())


class Redis(Component):
    name = "redis"
    start_timeout = 15.0

    def ports(self) -> list[int]:
        return [port_from_env("EVENTFLEET_REDIS_PORT", 26379)]

    def env(self) -> dict[str, str]:
        return {"EVENTFLEET_REDIS_URL": f"redis://{self.address()}/0"}

    def prepare(self) -> None:
        if shutil.which("redis-server") is None:
            raise StackError(
                self.name,
                "redis-server not found on PATH",
                fix="run `make system-deps` (installs Debian's redis-server package)",
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
        return [
            port_from_env("EVENTFLEET_KAFKA_PORT", 29092),
            port_from_env("EVENTFLEET_KAFKA_CONTROLLER_PORT", 29093),
        ]

    def env(self) -> dict[str, str]:
        return {"EVENTFLEET_KAFKA_BOOTSTRAP": self.address()}

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
        java = shutil.which("java")
        if java is None:
            raise StackError(
                self.name,
                "java not found on PATH",
                fix="install a Java 17+ runtime (Debian: openjdk-17-jre-headless)",
            )
        return java

    def fetch_jars(self) -> None:
        if (self.libs / ".complete").exists():
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError(
                self.name,
                "mvn not found on PATH (needed once to fetch the jars)",
                fix="install Maven (Debian: maven)",
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
        broker, controller = self.ports()
        config = self.home / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers={HOST}:{controller}",
                    f"listeners=PLAINTEXT://{HOST}:{broker},CONTROLLER://{HOST}:{controller}",
                    f"advertised.listeners=PLAINTEXT://{HOST}:{broker}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
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
        return kafka_api_versions(self.ports()[0])


def kafka_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as Kafka's Uuid)."""
    import base64

    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


@contextlib.contextmanager
def spinner(label: str) -> Iterator[None]:
    """Elapsed seconds on one terminal line while a slow step runs (plain lines when not a tty)."""
    if not sys.stdout.isatty():
        yield
        return
    import threading

    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not done.wait(1.0):
            print(f"\r  {label} … {time.monotonic() - started:.0f}s", end="", flush=True)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        print("\r\033[K", end="", flush=True)


# ----------------------------------------------------------------------------------------------
# Kubernetes: etcd, kube-apiserver and kube-controller-manager (garbage collector, namespace
# lifecycle, service accounts; no Deployment controller, no scheduler, no kubelet), built from
# the Go module proxy by hack/k8s/build and cached outside the repository (hack/k8s/README.md).

K8S_DIR = REPO / "hack" / "k8s"
PKI_DIR = STACK_DIR / "pki"
KUBECONFIG = STACK_DIR / "kubeconfig"


def kube_bin_dir() -> Path:
    found = subprocess.run(
        [str(K8S_DIR / "build"), "--print-bin-dir"], capture_output=True, text=True, check=False
    )
    return Path(found.stdout.strip())


def ensure_kube_binaries(component: str) -> Path:
    """Build (cold: ~9 minutes) or reuse the binaries; the build prints its own progress."""
    bindir = kube_bin_dir()
    if all(
        (bindir / name).is_file()
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
    ):
        return bindir
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        raise StackError(
            component,
            "Go is needed once to build the Kubernetes binaries",
            fix="install Go 1.24+ (see README)",
        )
    say(
        f"  {component}: building the Kubernetes control plane from Go modules (first run "
        "only; progress below)"
    )
    code = subprocess.run([str(K8S_DIR / "build")], check=False, timeout=3600).returncode
    if code != 0:
        raise StackError(
            component,
            f"hack/k8s/build failed (exit {code})",
            fix=f"read the build logs under {bindir.parent / 'logs'}",
        )
    return bindir


def ensure_pki(component: str) -> None:
    if (PKI_DIR / "admin.crt").is_file() and (PKI_DIR / "sa.key").is_file():
        return
    run_quiet(
        [str(K8S_DIR / "pki"), str(PKI_DIR)],
        STACK_DIR / "pki.log",
        component,
        "generating certificates",
        timeout=120,
    )


def write_kubeconfig(path: Path, user: str, port: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "\n".join(
            [
                "apiVersion: v1",
                "kind: Config",
                "clusters:",
                "- name: eventfleet-local",
                "  cluster:",
                f"    server: https://{HOST}:{port}",
                f"    certificate-authority: {PKI_DIR / 'ca.crt'}",
                "users:",
                f"- name: {user}",
                "  user:",
                f"    client-certificate: {PKI_DIR / (user + '.crt')}",
                f"    client-key: {PKI_DIR / (user + '.key')}",
                "contexts:",
                "- name: eventfleet-local",
                f"  context: {{cluster: eventfleet-local, user: {user}}}",
                "current-context: eventfleet-local",
                "",
            ]
        )
    )
    path.chmod(0o600)


def https_get(url: str, *, verify: bool = True, client_cert: str | None = None) -> str | None:
    """The body of a GET over TLS, or None when it fails (any reason)."""
    context = ssl.create_default_context(cafile=str(PKI_DIR / "ca.crt") if verify else None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        context.load_cert_chain(
            str(PKI_DIR / f"{client_cert}.crt"), str(PKI_DIR / f"{client_cert}.key")
        )
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as answer:  # noqa: S310
            return str(answer.read().decode())
    except (OSError, urllib.error.URLError, ssl.SSLError):
        return None


class Etcd(Component):
    name = "etcd"
    start_timeout = 30.0

    def ports(self) -> list[int]:
        return [
            port_from_env("EVENTFLEET_ETCD_PORT", 22379),
            port_from_env("EVENTFLEET_ETCD_PEER_PORT", 22380),
        ]

    def prepare(self) -> None:
        ensure_kube_binaries(self.name)
        data = self.home / "data"
        if data.exists() and any(data.iterdir()) and not (data / "member").is_dir():
            raise StackError(
                self.name,
                f"{display(data)} holds files but no member/ folder",
                self.log,
                "`hack/stack reset etcd` deletes the cluster's state",
            )
        self.home.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        client, peer = self.ports()
        return [
            str(kube_bin_dir() / "etcd"),
            "--name=eventfleet",
            f"--data-dir={self.home / 'data'}",
            f"--listen-client-urls=http://{HOST}:{client}",
            f"--advertise-client-urls=http://{HOST}:{client}",
            f"--listen-peer-urls=http://{HOST}:{peer}",
            f"--initial-advertise-peer-urls=http://{HOST}:{peer}",
            f"--initial-cluster=eventfleet=http://{HOST}:{peer}",
            # A disposable development cluster: durability traded for speed.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def probe(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://{self.address()}/health", timeout=3) as answer:
                body = answer.read().decode()
        except OSError as error:
            return f"no answer: {error}"
        return None if '"health":"true"' in body else f"unhealthy: {body[:80]}"


class KubeApiserver(Component):
    name = "kube-apiserver"
    start_timeout = 90.0

    def ports(self) -> list[int]:
        return [port_from_env("EVENTFLEET_KUBE_APISERVER_PORT", 26443)]

    def env(self) -> dict[str, str]:
        return {
            "KUBECONFIG": str(KUBECONFIG),
            "EVENTFLEET_KUBECTL": str(kube_bin_dir() / "kubectl"),
        }

    def prepare(self) -> None:
        ensure_kube_binaries(self.name)
        ensure_pki(self.name)
        self.home.mkdir(parents=True, exist_ok=True)
        write_kubeconfig(KUBECONFIG, "admin", self.ports()[0])

    def command(self) -> list[str]:
        port = self.ports()[0]
        pki = PKI_DIR
        return [
            str(kube_bin_dir() / "kube-apiserver"),
            f"--etcd-servers=http://{Etcd().address()}",
            f"--bind-address={HOST}",
            f"--advertise-address={HOST}",
            f"--secure-port={port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--authorization-mode=RBAC",
            f"--service-account-issuer=https://{HOST}:{port}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            # Advertising 127.0.0.1 makes the endpoint reconciler complain every 10 s.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={self.home / 'certs'}",
        ]

    def probe(self) -> str | None:
        base = f"https://{self.address()}"
        if https_get(f"{base}/readyz") != "ok":
            return "/readyz is not ok yet"
        # Ready for users once the bootstrap controller has made the default namespace.
        if https_get(f"{base}/api/v1/namespaces/default", client_cert="admin") is None:
            return "namespace default not there yet"
        return None


class KubeControllerManager(Component):
    """Only controllers that make sense without nodes: garbage collection of owned objects,
    namespace lifecycle, service accounts. Deployments are run by hack/podrunner.py."""

    name = "kube-controller-manager"
    start_timeout = 60.0
    controllers = (
        "garbage-collector-controller,namespace-controller,serviceaccount-controller,"
        "serviceaccount-token-controller"
    )

    def ports(self) -> list[int]:
        return [port_from_env("EVENTFLEET_KUBE_CONTROLLER_MANAGER_PORT", 20257)]

    def prepare(self) -> None:
        ensure_kube_binaries(self.name)
        ensure_pki(self.name)
        write_kubeconfig(
            self.home / "kubeconfig", "kube-controller-manager", KubeApiserver().ports()[0]
        )

    def command(self) -> list[str]:
        return [
            str(kube_bin_dir() / "kube-controller-manager"),
            f"--kubeconfig={self.home / 'kubeconfig'}",
            f"--controllers={self.controllers}",
            # Each controller must act as its own service account, or the garbage collector
            # is forbidden to delete anything (hack/k8s/README.md, gotchas).
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--bind-address={HOST}",
            f"--secure-port={self.ports()[0]}",
            f"--service-account-private-key-file={PKI_DIR / 'sa.key'}",
            f"--root-ca-file={PKI_DIR / 'ca.crt'}",
        ]

    def probe(self) -> str | None:
        answer = https_get(f"https://{self.address()}/healthz", verify=False)
        return None if answer == "ok" else "/healthz is not ok yet"


def components() -> list[Component]:
    return [Postgres(), Redis(), Kafka(), Etcd(), KubeApiserver(), KubeControllerManager()]


def select(names: Sequence[str]) -> list[Component]:
    every = components()
    if not names or list(names) == ["all"]:
        return every
    known = {c.name: c for c in every}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StackError(
            "stack", f"unknown component(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return [known[n] for n in names]


@contextlib.contextmanager
def stack_lock() -> Iterator[None]:
    """Two `up`s at once (a test run and a demo) must not start the same server twice."""
    STACK_DIR.mkdir(parents=True, exist_ok=True)
    with (STACK_DIR / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another `hack/stack` command to finish …")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cmd_up(names: Sequence[str]) -> int:
    started = time.monotonic()
    say(f"bringing up the local stack in {display(STACK_DIR)}")
    with stack_lock():
        for component in select(names):
            step = time.monotonic()
            outcome = component.up()
            say(
                f"✓ {component.name:<24} {outcome:<44} {component.address():<22} "
                f"{time.monotonic() - step:5.1f}s"
            )
    say(f"stack ready in {time.monotonic() - started:.1f}s — `hack/stack env` prints its addresses")
    return 0


def cmd_status(names: Sequence[str]) -> int:
    healthy_all = True
    for component in select(names):
        healthy, text = component.status()
        healthy_all &= healthy
        mark = "✓" if healthy else "✗"
        say(
            f"{mark} {component.name:<24} {text:<44} {component.address():<22} "
            f"{display(component.log)}"
        )
    return 0 if healthy_all else 1


def cmd_down(names: Sequence[str]) -> int:
    with stack_lock():
        for component in reversed(select(names)):
            stopped = component.down()
            say(f"{'■ stopped' if stopped else '· was not running':<18} {component.name}")
    return 0


def cmd_reset(names: Sequence[str]) -> int:
    if not names:
        raise StackError("stack", "reset needs a component name or `all`")
    with stack_lock():
        for component in reversed(select(names)):
            component.down()
            shutil.rmtree(component.home, ignore_errors=True)
            (STACK_DIR / component.name).unlink(missing_ok=True)  # a relocation link, if any
            say(f"■ reset {component.name}: stopped and deleted {display(component.home)}")
    return 0


def stack_env() -> dict[str, str]:
    merged: dict[str, str] = {}
    for component in components():
        merged.update(component.env())
    return merged


def cmd_env(*, as_json: bool) -> int:
    values = stack_env()
    if as_json:
        print(json.dumps(values, indent=2))
        return 0
    for key, value in values.items():
        print(f"export {key}={shlex.quote(value)}")
    # The stack's kubectl (the server's version) ahead of any other on PATH.
    print(f'export PATH={shlex.quote(str(kube_bin_dir()))}:"$PATH"')
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb in ("up", "status", "down", "reset"):
        sub.add_parser(verb).add_argument("components", nargs="*")
    sub.add_parser("env").add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    handlers: dict[str, Callable[[], int]] = {
        "up": lambda: cmd_up(args.components),
        "status": lambda: cmd_status(args.components),
        "down": lambda: cmd_down(args.components),
        "reset": lambda: cmd_reset(args.components),
        "env": lambda: cmd_env(as_json=args.json),
    }
    try:
        return handlers[args.verb]()
    except StackError as error:
        print(error.render(), file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
