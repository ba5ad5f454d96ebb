"""Run `eventfleet operator ...` with what a profile of it needs, for the operator benchmarks:

    EVENTFLEET_BENCH_OPERATOR=".venv/bin/python hack/profile_operator.py" make bench-operator-scale

- kopf's object log lines name their object (`[namespace/name] Handler ... succeeded`);
- every Python thread's stack is sampled every 20 ms: per 10 s, the count of samples by thread
  (numbers stripped), innermost eventfleet frame and innermost frame, in stacks.jsonl. Wall
  time, not CPU: a thread waiting for an answer shows where it waits;
- the autoscaling loop's rounds (when each began, how many objects), and each pass and poll with
  its seconds, in events.jsonl; so is the lag of kopf's event loop (a 0.1 s sleep's overshoot).

`hack/profile_operator.py readers N` measures what N consumer-group readers cost (the operator's
own kafka_admin code, asked for committed offsets once each, on a topic of its own): RSS,
threads and file descriptors of the process every 100. Needs EVENTFLEET_KAFKA_BOOTSTRAP.

Files go to PROFILE_DIR (default .stack/profile). `hack/profile_operator.py report` summarises
them: the loop's rounds, passes and polls, and where each kind of thread spent its wall time
while it was busy. The figures in docs/performance.md ("Operator at scale") came from them.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import kopf
from kopf._core.actions.loggers import ObjectPrefixingTextFormatter  # kopf's own formatter

from eventfleet.operator import autoscaler, registry
from eventfleet.operator import cli as operator_cli

OUT = Path(os.environ.get("PROFILE_DIR", Path(__file__).resolve().parent.parent / ".stack/profile"))
SAMPLE_SECONDS = 0.02
SNAPSHOT_SECONDS = 10.0
_tasks: set[asyncio.Task[None]] = set()  # referenced, so the event loop keeps them


class Recorder:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()

    def emit(self, **fields: Any) -> None:
        line = json.dumps({"t": time.time(), **fields})
        with self.lock:
            self.out.write(line + "\n")


def timed(recorder: Recorder, kind: str, function: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            recorder.emit(kind=kind, seconds=time.perf_counter() - started)

    return wrapper


def instrument(recorder: Recorder) -> None:
    """Wrap the loop's functions by name, where they exist (the loop may change)."""
    consumers = registry.consumers

    def counted() -> Any:
        found = consumers()
        if threading.current_thread().name == "autoscaling":
            recorder.emit(kind="round", objects=len(found))
        return found

    registry.consumers = counted
    for name, kind in (("autoscale", "pass"), ("_poll", "poll")):
        if hasattr(autoscaler, name):
            setattr(autoscaler, name, timed(recorder, kind, getattr(autoscaler, name)))


def sample_stacks(path: Path) -> None:
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    me = threading.get_ident()
    last = time.monotonic()
    while True:
        time.sleep(SAMPLE_SECONDS)
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        for ident, frame in sys._current_frames().items():  # the one way to sample threads
            if ident == me:
                continue
            leaf = f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"
            ours = "-"
            walker: Any = frame
            while walker is not None:
                if "eventfleet" in walker.f_code.co_filename:
                    code = walker.f_code
                    ours = f"{Path(code.co_filename).name}:{code.co_name}:{walker.f_lineno}"
                    break
                walker = walker.f_back
            thread = re.sub(r"[_-]?\d+$", "", names.get(ident, "?"))
            counts[(thread, ours, leaf)] += 1
        if time.monotonic() - last >= SNAPSHOT_SECONDS:
            rows = [[*key, n] for key, n in counts.items()]
            with path.open("a") as out:
                out.write(json.dumps({"t": time.time(), "counts": rows}) + "\n")
            counts.clear()
            last = time.monotonic()


def _share(values: list[float], at: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(at * len(ordered)))] if ordered else 0.0


def report() -> int:
    events = [json.loads(line) for line in (OUT / "events.jsonl").open()]
    rounds = [e for e in events if e["kind"] == "round"]
    periods = [b["t"] - a["t"] for a, b in itertools.pairwise(rounds)]
    most = max((r["objects"] for r in rounds), default=0)
    full = [p for p, r in zip(periods, rounds, strict=False) if r["objects"] == most]
    print(f"rounds: {len(rounds)}; with all {most} objects: {len(full)}, seconds each (start to")
    print("  next start) " + ", ".join(f"{p:.1f}" for p in full))
    for kind in ("pass", "poll", "loop_lag"):
        values = [e["seconds"] for e in events if e["kind"] == kind]
        print(
            f"{kind}: {len(values)}, seconds p50 {_share(values, 0.5):.3f} "
            f"p90 {_share(values, 0.9):.3f} max {max(values, default=0):.3f}"
        )
    busy: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for line in (OUT / "stacks.jsonl").open():
        for thread, ours, leaf, count in json.loads(line)["counts"]:
            if not leaf.endswith(("thread.py:_worker", "selectors.py:select")):
                busy[(thread, ours, leaf)] += count  # idle threads wait in those two
    threads = collections.Counter[str]()
    for (thread, _, _), count in busy.items():
        threads[thread] += count
    for thread, total in threads.most_common(3):
        print(f"{thread}: {total} busy samples; where (innermost eventfleet frame, innermost):")
        for (name, ours, leaf), count in busy.most_common():
            if name == thread and count / total >= 0.02:
                print(f"  {count / total:5.1%} {ours:52} {leaf}")
    return 0


def readers(count: int) -> int:
    from confluent_kafka import TopicPartition  # noqa: PLC0415 - only for this measurement
    from confluent_kafka.admin import AdminClient, NewTopic  # noqa: PLC0415

    from eventfleet.operator import kafka_admin  # noqa: PLC0415
    from eventfleet.operator.kafka_auth import KafkaConnection  # noqa: PLC0415

    def usage() -> str:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 1e6
        files = sum(1 for _ in Path("/proc/self/fd").iterdir())
        return f"RSS {rss:.0f} MB, {fields[17]} threads, {files} open files"

    bootstrap = os.environ["EVENTFLEET_KAFKA_BOOTSTRAP"]
    topic = f"profile.readers.{os.getpid()}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    partitions = [TopicPartition(topic, p) for p in range(3)]
    print(f"0 readers: {usage()}")
    try:
        for index in range(1, count + 1):
            # as a poll does
            kafka_admin._committed(KafkaConnection(bootstrap), f"profile.{index}", partitions)
            if index % 100 == 0 or index == count:
                print(f"{index} readers: {usage()}", flush=True)
    finally:
        kafka_admin.close_readers()
        admin.delete_topics([topic])[topic].result(30)
    return 0


def main() -> int:
    if sys.argv[1:2] == ["report"]:
        return report()
    if sys.argv[1:2] == ["readers"]:
        return readers(int(sys.argv[2]) if len(sys.argv) > 2 else 500)
    if sys.argv[1:2] != ["operator"]:
        raise SystemExit("usage: profile_operator.py operator [eventfleet operator's arguments]")
    OUT.mkdir(parents=True, exist_ok=True)
    handler = logging.StreamHandler()
    handler.setFormatter(
        ObjectPrefixingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.getLogger().addHandler(handler)  # the CLI's basicConfig then leaves it in place
    logging.getLogger().setLevel(logging.INFO)
    recorder = Recorder((OUT / "events.jsonl").open("w", buffering=1))
    (OUT / "stacks.jsonl").unlink(missing_ok=True)
    instrument(recorder)
    threading.Thread(
        target=sample_stacks, args=(OUT / "stacks.jsonl",), name="profile", daemon=True
    ).start()

    @kopf.on.startup()
    async def event_loop_lag(**_: Any) -> None:
        async def probe() -> None:
            while True:
                started = time.perf_counter()
                await asyncio.sleep(0.1)
                recorder.emit(kind="loop_lag", seconds=time.perf_counter() - started - 0.1)

        _tasks.add(asyncio.get_running_loop().create_task(probe()))

    return operator_cli.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
