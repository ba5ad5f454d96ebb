"""What the operator benchmarks share (hack/bench_operator.py, hack/bench_operator_scale.py):
sinks, EventConsumer manifests, the operator process, and figures from /proc and /metrics.

Every EventConsumer gets a sink of its own: a PostgreSQL schema (`search_path` in its DSN) in a
database created for its namespace. A second EventConsumer of one mode on one sink is refused
with SinkConflict and never becomes Ready, so a fleet on one shared DSN would measure refusals.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import psycopg2
from confluent_kafka.admin import AdminClient
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
GROUP, VERSION, PLURAL = "eventfleet.dev", "v1alpha1", "eventconsumers"
BENCH_LABEL = "eventfleet.dev/bench"  # on every EventConsumer a benchmark creates


def consumer(
    namespace: str,
    name: str,
    *,
    bootstrap: str,
    topic: str,
    run: str,
    poll_seconds: int,
    deletion_policy: str = "Retain",
) -> dict[str, Any]:
    """A logger EventConsumer at zero replicas until lag (no consumer process starts), its DSN
    under the key `name` of the namespace's Secret `db`."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EventConsumer",
        "metadata": {"name": name, "namespace": namespace, "labels": {BENCH_LABEL: run}},
        "spec": {
            "mode": "logger",
            "kafka": {"bootstrapServers": bootstrap, "topic": topic},
            "topic": {"partitions": 3, "deletionPolicy": deletion_policy},
            "postgres": {"dsnSecretRef": {"name": "db", "key": name}},
            "replicas": {"min": 0, "max": 3},
            "autoscaling": {"pollIntervalSeconds": poll_seconds, "lagPerReplica": 100},
        },
    }


def is_ready(found: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (found.get("status") or {}).get("conditions") or []
    )


def wait(predicate: Callable[[], bool], timeout: float, what: str, *, every: float = 0.1) -> float:
    """Seconds until `predicate` held (asked `every` seconds); raises TimeoutError naming
    `what` after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---------------------------------------------------------------------------------------------
# Sinks: one database per namespace, one schema per EventConsumer


class Sinks:
    """Databases `<run>_<index>` with a schema per EventConsumer, and the namespaces' Secrets
    that hold each one's DSN. `drop` removes the databases (and whatever connects to them)."""

    def __init__(self, admin_dsn: str, run: str) -> None:
        self.admin_dsn = admin_dsn
        self.run = run.replace("-", "_")
        self.databases: list[str] = []

    def _dsn(self, database: str, schema: str | None = None) -> str:
        parts = urllib.parse.urlsplit(self.admin_dsn)
        query = f"options={urllib.parse.quote(f'-csearch_path={schema}')}" if schema else ""
        return urllib.parse.urlunsplit(parts._replace(path=f"/{database}", query=query))

    def create(self, core: client.CoreV1Api, namespace: str, names: Iterable[str]) -> None:
        """A database for `namespace`, a schema per name, and the Secret `db` with their DSNs."""
        database = f"{self.run}_{len(self.databases)}"
        with contextlib.closing(psycopg2.connect(self.admin_dsn)) as admin:
            admin.autocommit = True
            admin.cursor().execute(f'CREATE DATABASE "{database}"')
        self.databases.append(database)
        data: dict[str, bytes | str] = {}
        with (
            contextlib.closing(psycopg2.connect(self._dsn(database))) as connection,
            connection,
            connection.cursor() as cursor,
        ):
            for name in names:
                schema = name.replace("-", "_")
                cursor.execute(f'CREATE SCHEMA "{schema}"')
                data[name] = base64.b64encode(self._dsn(database, schema).encode()).decode()
        core.create_namespaced_secret(
            namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="db"), data=data)
        )

    def drop(self) -> None:
        with contextlib.closing(psycopg2.connect(self.admin_dsn)) as admin:
            admin.autocommit = True
            for database in self.databases:
                admin.cursor().execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        self.databases.clear()


def delete_topics(bootstrap: str, topics: list[str]) -> list[str]:
    """Delete the topics; returns those that could not be deleted."""
    if not topics:
        return []
    admin = AdminClient({"bootstrap.servers": bootstrap})
    left = []
    for topic, future in admin.delete_topics(topics, operation_timeout=60).items():
        try:
            future.result(timeout=90)
        except Exception:  # noqa: BLE001 - cleanup reports what is left and goes on
            left.append(topic)
    return [t for t in left if t in admin.list_topics(timeout=30).topics]


def apply_crd() -> None:
    subprocess.run(
        [
            os.environ.get("EVENTFLEET_KUBECTL", "kubectl"),
            "apply",
            "--server-side",
            "-f",
            str(REPO / "crds" / "eventconsumers.eventfleet.dev.yaml"),
        ],
        check=True,
        capture_output=True,
    )


# ---------------------------------------------------------------------------------------------
# The operator process and what /proc says of it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_operator(
    namespaces: list[str], log: Path, metrics_port: int = 0
) -> subprocess.Popen[bytes]:
    """`eventfleet operator` on these namespaces; EVENTFLEET_BENCH_OPERATOR replaces the
    `eventfleet` command (e.g. with a wrapper that profiles it)."""
    scope = [arg for namespace in namespaces for arg in ("--namespace", namespace)]
    command = shlex.split(os.environ.get("EVENTFLEET_BENCH_OPERATOR", "")) or [
        str(Path(sys.executable).parent / "eventfleet")
    ]
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                *command,
                "operator",
                *scope,
                "--bind",
                "127.0.0.1",
                "--metrics-port",
                str(metrics_port),
                "--liveness-port",
                "0",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


class Usage(NamedTuple):
    cpu_seconds: float  # user + system since the process started
    rss_bytes: int
    threads: int
    open_files: int


def process_usage(pid: int) -> Usage:
    """CPU seconds, resident memory, threads and open file descriptors of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return Usage(
        cpu_seconds=(int(fields[11]) + int(fields[12])) / ticks,
        rss_bytes=int(fields[21]) * os.sysconf("SC_PAGE_SIZE"),
        threads=int(fields[17]),
        open_files=sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir()),
    )


STACK_SERVICES = ("kube-apiserver", "etcd", "kafka", "postgres", "kube-controller-manager")


def cpu_shares(operator_pid: int) -> dict[str, float]:
    """CPU seconds so far of the operator, of each stack service (with its exited children:
    PostgreSQL's backends, one per connection) and of the whole machine ("machine")."""
    ticks = os.sysconf("SC_CLK_TCK")
    stack = Path(os.environ.get("EVENTFLEET_STACK_DIR", REPO / ".stack"))

    def of(pid: int, *, children: bool) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        own = int(fields[11]) + int(fields[12])
        waited = int(fields[13]) + int(fields[14]) if children else 0
        return (own + waited) / ticks

    shares = {"operator": of(operator_pid, children=False)}
    for service in STACK_SERVICES:
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(json.loads((stack / service / "pid.json").read_text())["pid"])
            shares[service] = of(pid, children=True)
    # user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    jiffies = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    shares["machine"] = (sum(jiffies) - jiffies[3] - jiffies[4]) / ticks
    return shares


def cpu_between(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds between two cpu_shares; "others" is the machine's rest (other processes)."""
    spent = {name: after[name] - before.get(name, after[name]) for name in after}
    spent["others"] = spent["machine"] - sum(v for k, v in spent.items() if k != "machine")
    return spent


# ---------------------------------------------------------------------------------------------
# Counters from /metrics


def scrape(url: str, *, pool: Any = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition: (name, sorted labels) -> value. `pool` is a
    urllib3 pool manager with the credentials the URL needs (the API server's)."""
    if pool is None:
        import urllib.request  # noqa: PLC0415 - only for the operator's plain endpoint

        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            text = response.read().decode()
    else:
        text = pool.request("GET", url, timeout=10).data.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


Samples = Mapping[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class RequestCount:
    """API server requests by (verb, resource[/subresource]) between two scrapes, and the
    seconds the API server took to answer them (apiserver_request_duration_seconds; watches
    are not timed). Only requests for resources (no /metrics, /healthz, discovery), so the
    scrapes do not count themselves."""

    by_kind: Counter[tuple[str, str]]
    seconds: dict[tuple[str, str], float]

    @classmethod
    def between(cls, before: Samples, after: Samples) -> RequestCount:
        counts: Counter[tuple[str, str]] = Counter()
        seconds: dict[tuple[str, str], float] = {}
        for key, value in after.items():
            name, labels = key
            found = dict(labels)
            if not found.get("resource"):
                continue
            sub = found.get("subresource")
            kind = found["resource"] + (f"/{sub}" if sub else "")
            delta = value - before.get(key, 0.0)
            if name == "apiserver_request_total" and delta:
                counts[(found["verb"], kind)] += int(delta)
            elif name == "apiserver_request_duration_seconds_sum" and delta:
                seconds[(found["verb"], kind)] = seconds.get((found["verb"], kind), 0.0) + delta
        return cls(counts, seconds)

    def total(self, resources: Iterable[str] | None = None) -> int:
        wanted = set(resources) if resources is not None else None
        return sum(
            n
            for (_, kind), n in self.by_kind.items()
            if wanted is None or kind.split("/")[0] in wanted
        )

    def mean_ms(self, kind: tuple[str, str]) -> float:
        """The API server's mean time to answer one request of this kind, in milliseconds (NaN
        for watches, which last as long as they are open)."""
        count = self.by_kind.get(kind, 0)
        if kind[0] == "WATCH":
            return float("nan")
        return 1000 * self.seconds.get(kind, 0.0) / count if count else 0.0


def counter_total(samples: Samples, name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)
