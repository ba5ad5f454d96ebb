"""The operator at scale: N EventConsumers in M namespaces, each figure beside the same figure for
one EventConsumer, measured by the same operator process in the same run.

1. One EventConsumer alone: apply -> Ready, then a steady-state window (operator CPU and RSS
   from /proc, API server requests from its /metrics), then one scale decision. It is deleted.
2. N EventConsumers applied at once, spread over M namespaces: apply -> all Ready, the same
   steady-state window, the same scale decision on one of them while all N are watched.

    source <(hack/stack env) && .venv/bin/python hack/bench_operator.py --scale 500 --namespaces 20

Every EventConsumer has the same spec (logger, replicas.min 0 so no consumer process starts,
pollIntervalSeconds --poll-seconds, its own topic and sink). API requests are counted by the API
server (apiserver_request_total, resource requests only): every client's, so the figure for one
EventConsumer is the floor the rest of the control plane sets. The bench makes no request during a
window. A scale decision is timed from a backlog produced just after a poll, to the status showing
it; "after it was due" subtracts the poll interval, the floor. Everything created (namespaces,
topics, databases) is deleted at the end, also on failure, Ctrl-C or the --budget deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import FrameType
from typing import Any

from bench_operator_figures import Figures, report
from confluent_kafka import Producer
from fleetstack.processes import stop_child
from kubernetes import client, config
from operator_bench import (
    BENCH_LABEL,
    GROUP,
    PLURAL,
    REPO,
    VERSION,
    RequestCount,
    Samples,
    Sinks,
    apply_crd,
    consumer,
    counter_total,
    cpu_between,
    cpu_shares,
    delete_topics,
    free_port,
    is_ready,
    load_average,
    process_usage,
    scrape,
    start_operator,
    wait,
)

BACKLOG = 2000  # events produced for the scale decision: lagPerReplica 100, so lag decides


class Run:
    """The run's Kubernetes clients, names and everything to clean up."""

    def __init__(self, args: argparse.Namespace) -> None:
        config.load_kube_config()
        self.api = client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.bootstrap = os.environ["EVENTFLEET_KAFKA_BOOTSTRAP"]
        self.id = f"bench-{uuid.uuid4().hex[:6]}"
        self.namespaces = [f"{self.id}-{i:02d}" for i in range(args.namespaces)]
        self.poll_seconds: int = args.poll_seconds
        self.window: float = args.window
        self.sinks = Sinks(os.environ["EVENTFLEET_POSTGRES_DSN"], self.id)
        self.topics: list[str] = []
        self.host = self.api.configuration.host
        self.pool = self.api.rest_client.pool_manager  # holds the admin credentials
        self.metrics_url = ""

    def create(self, namespace: str, name: str) -> str:
        topic = f"{self.id}.{name}"
        self.topics.append(topic)
        self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            consumer(
                namespace,
                name,
                bootstrap=self.bootstrap,
                topic=topic,
                run=self.id,
                poll_seconds=self.poll_seconds,
            ),
        )
        return topic

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        found: Any = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        return dict(found)

    def listed(self) -> list[dict[str, Any]]:
        found: Any = self.custom.list_cluster_custom_object(
            GROUP, VERSION, PLURAL, label_selector=f"{BENCH_LABEL}={self.id}"
        )
        items: list[dict[str, Any]] = found["items"]
        return items

    def cleanup(self) -> None:
        """Namespaces (their EventConsumers without finalizers), topics, databases. Each step
        runs whatever the one before it left."""
        for namespace in self.namespaces:
            with contextlib.suppress(client.ApiException):
                self.core.delete_namespace(namespace)
        with contextlib.suppress(Exception):  # a finalizer nobody removes keeps a namespace
            for item in self.listed():
                if item["metadata"].get("finalizers"):
                    self.custom.patch_namespaced_custom_object(
                        GROUP,
                        VERSION,
                        item["metadata"]["namespace"],
                        PLURAL,
                        item["metadata"]["name"],
                        {"metadata": {"finalizers": None}},
                    )
        left_topics = delete_topics(self.bootstrap, self.topics)
        self.sinks.drop()
        try:
            wait(lambda: not self._namespaces_left(), 180, "namespaces deleted", every=1)
        except TimeoutError:
            print(f"cleanup: namespaces still terminating: {self._namespaces_left()}")
        if left_topics:
            print(f"cleanup: topics left behind: {left_topics}")

    def _namespaces_left(self) -> list[str]:
        names = [n.metadata.name if n.metadata else "" for n in self.core.list_namespace().items]
        return [name for name in names if name and name.startswith(f"{self.id}-")]


# ---------------------------------------------------------------------------------------------
# Measurements


def steady_state(run: Run, pid: int, figures: Figures) -> None:
    """CPU, peak RSS, threads and files of the operator, and API requests, over one window."""
    api_before = scrape(f"{run.host}/metrics", pool=run.pool)
    own_before = scrape(run.metrics_url)
    usage_before = process_usage(pid)
    cpu_before = cpu_shares(pid)
    started = time.monotonic()
    peak = usage_before.rss_bytes
    while time.monotonic() - started < run.window:
        time.sleep(1)
        peak = max(peak, process_usage(pid).rss_bytes)
    usage = process_usage(pid)
    figures.window_cpu = cpu_between(cpu_before, cpu_shares(pid))
    elapsed = time.monotonic() - started
    api_after = scrape(f"{run.host}/metrics", pool=run.pool)
    own_after = scrape(run.metrics_url)
    figures.window_seconds = elapsed
    figures.cpu_cores = (usage.cpu_seconds - usage_before.cpu_seconds) / elapsed
    figures.rss_bytes = max(peak, usage.rss_bytes)
    figures.threads = usage.threads
    figures.open_files = usage.open_files
    figures.requests = RequestCount.between(api_before, api_after)
    name = "eventfleet_operator_api_reads_total"
    figures.operator_reads = counter_total(own_after, name) - counter_total(own_before, name)
    figures.window_reconciles = _reconciles(own_before, own_after)[0]


def _reconciles(before: Samples, after: Samples) -> tuple[float, float]:
    """Reconciles between two scrapes of the operator's metrics, and their mean seconds."""

    def delta(name: str) -> float:
        return counter_total(after, name) - counter_total(before, name)

    count = delta("eventfleet_operator_reconcile_seconds_count")
    mean = delta("eventfleet_operator_reconcile_seconds_sum") / count if count else 0.0
    return delta("eventfleet_operator_reconciles_total"), mean


def last_polls(run: Run) -> dict[tuple[str, str], float]:
    """When the operator last polled each EventConsumer's lag (its own metric; status.lag's
    measuredAt moves only when the measurement changed, or every few minutes at idle)."""
    found = {}
    for (name, labels), value in scrape(run.metrics_url).items():
        if name == "eventfleet_operator_last_poll_timestamp_seconds":
            named = dict(labels)
            found[(named["namespace"], named["name"])] = value
    return found


def settle(run: Run, since: float, timeout: float) -> None:
    """Wait until every EventConsumer was polled after `since` (when all were Ready): the first
    polls of many, which come together with the reconciles, are over, and what follows is the
    loop's rhythm. The objects are listed once a second: a list of hundreds is no small request."""

    def polled() -> bool:
        polls = last_polls(run)
        for item in run.listed():
            key = (item["metadata"]["namespace"], item["metadata"]["name"])
            if polls.get(key, 0.0) < since:
                return False
        return True

    wait(polled, timeout, "a poll of every EventConsumer after all were Ready", every=1)


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def scale_decision(run: Run, namespace: str, name: str, topic: str, figures: Figures) -> None:
    """A backlog produced just after one of the EventConsumer's polls, and the time until its
    status shows the scale-up (status.lastScale), against when that poll was due."""

    def polled_at() -> float | None:
        return last_polls(run).get((namespace, name))

    first = polled_at()
    wait(lambda: polled_at() not in (None, first), 3 * run.poll_seconds + 30, "a fresh poll")
    last_poll = polled_at() or 0.0
    producer = Producer({"bootstrap.servers": run.bootstrap, "linger.ms": 10})
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for index in range(BACKLOG):
        value = {"event_type": "player_login", "player_id": f"p{index}", "game_id": "g"}
        producer.produce(topic, key=f"p{index}", value=json.dumps({**value, "timestamp": stamp}))
    producer.flush(30)
    produced = time.time()
    decision: dict[str, Any] = {}

    def decided() -> bool:
        found = (run.get(namespace, name).get("status") or {}).get("lastScale") or {}
        decision.update(found)
        return int(found.get("to") or 0) > 0

    wait(decided, 4 * run.poll_seconds + 60, f"the scale decision of {namespace}/{name}")
    seen = time.time()
    # The first poll due after the backlog was complete is the one that could decide.
    due = last_poll + run.poll_seconds
    while due < produced:
        due += run.poll_seconds
    figures.backlog_to_decision = seen - produced
    figures.after_due = seen - due
    figures.poll_late = _instant(decision["time"]) - due


# ---------------------------------------------------------------------------------------------
# The two phases


def one_alone(run: Run, pid: int) -> Figures:
    figures = Figures()
    namespace = run.namespaces[0]
    before = scrape(run.metrics_url)
    started = time.monotonic()
    topic = run.create(namespace, "solo")
    wait(lambda: is_ready(run.get(namespace, "solo")), 60, "one EventConsumer Ready")
    figures.ready_seconds = time.monotonic() - started
    reconciles = _reconciles(before, scrape(run.metrics_url))
    figures.apply_reconciles, figures.apply_reconcile_seconds = reconciles
    settle(run, time.time(), 60)
    steady_state(run, pid, figures)
    scale_decision(run, namespace, "solo", topic, figures)
    run.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "solo")
    wait(lambda: not run.listed(), 60, "the single EventConsumer deleted", every=0.5)
    return figures


def fleet(run: Run, pid: int, count: int) -> tuple[Figures, float, int]:
    """Returns the figures, the seconds the creates took, and the peak RSS while they became
    Ready."""
    figures = Figures()
    names = [(run.namespaces[i % len(run.namespaces)], f"ec-{i:03d}") for i in range(count)]
    before = scrape(run.metrics_url)
    api_before = scrape(f"{run.host}/metrics", pool=run.pool)
    cpu_before = cpu_shares(pid)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        topics = list(pool.map(lambda key: run.create(*key), names))
    created = time.monotonic() - started
    peak = 0
    ready = 0
    while time.monotonic() - started < 240:
        ready = sum(is_ready(item) for item in run.listed())
        peak = max(peak, process_usage(pid).rss_bytes)
        if ready == count:
            break
        time.sleep(1)
    figures.ready_seconds = time.monotonic() - started
    figures.apply_cpu = cpu_between(cpu_before, cpu_shares(pid))
    reconciles = _reconciles(before, scrape(run.metrics_url))
    figures.apply_reconciles, figures.apply_reconcile_seconds = reconciles
    figures.apply_requests = RequestCount.between(
        api_before, scrape(f"{run.host}/metrics", pool=run.pool)
    )
    if ready < count:
        raise TimeoutError(f"{count - ready} of {count} not Ready after 240 s")
    settle(run, time.time(), 150)
    steady_state(run, pid, figures)
    namespace, name = names[-1]
    scale_decision(run, namespace, name, topics[-1], figures)
    return figures, created, peak


def run_scale(args: argparse.Namespace) -> int:
    def deadline(signum: int, _frame: FrameType | None) -> None:
        raise TimeoutError(f"the run exceeded its budget of {args.budget} s (signal {signum})")

    signal.signal(signal.SIGALRM, deadline)
    signal.signal(signal.SIGTERM, deadline)
    signal.alarm(args.budget)
    run = Run(args)
    log = REPO / ".stack" / "bench-operator-scale.log"
    print(f"load average {load_average()} on {os.cpu_count()} CPUs; operator log: {log}")
    operator = None
    try:
        apply_crd()
        started = time.monotonic()
        per_namespace: dict[str, list[str]] = {n: [] for n in run.namespaces}
        for i in range(args.scale):
            per_namespace[run.namespaces[i % len(run.namespaces)]].append(f"ec-{i:03d}")
        per_namespace[run.namespaces[0]].append("solo")
        for namespace, names in per_namespace.items():
            run.core.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
            )
            run.sinks.create(run.core, namespace, names)
        print(f"  {args.namespaces} namespaces, databases and Secrets in "
              f"{time.monotonic() - started:.1f} s")  # fmt: skip
        port = free_port()
        run.metrics_url = f"http://127.0.0.1:{port}/metrics"
        operator = start_operator([f"{run.id}-*"], log, metrics_port=port)
        wait(lambda: _answers(run.metrics_url), 30, "the operator's /metrics")
        one = one_alone(run, operator.pid)
        print(
            f"  1 EventConsumer measured ({time.monotonic() - started:.0f} s into the run); "
            f"load average {load_average()}"
        )
        many, created, peak = fleet(run, operator.pid, args.scale)
        print(
            f"  {args.scale} created in {created:.1f} s (4 clients); peak RSS while they became "
            f"Ready {peak / 1e6:.0f} MB; measured {time.monotonic() - started:.0f} s into the "
            f"run; load average {load_average()}"
        )
        report(args.scale, args.namespaces, args.poll_seconds, one, many)
        return 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if operator is not None:
            stop_child(operator)
        started = time.monotonic()
        run.cleanup()
        print(f"  cleaned up in {time.monotonic() - started:.0f} s")


def _answers(url: str) -> bool:
    try:
        scrape(url)
    except OSError:
        return False
    return True
