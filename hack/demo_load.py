"""The demo's burst and what follows it: the load test's own sender through the gateway pod,
malformed records straight into Kafka, and the fleet's progress while it catches up."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
from argparse import Namespace
from pathlib import Path
from types import ModuleType

from confluent_kafka import Producer
from demo_cluster import REPO, TOPIC, consumers, lag_of, scaling_events

EVENTS = int(os.environ.get("EVENTFLEET_DEMO_EVENTS", "60000"))
MALFORMED = 24


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def send_load(gateway: str) -> int:
    """The load test's own sender (hack/loadtest.py); returns the events the gateway accepted."""
    loadtest = load_module(REPO / "hack" / "loadtest.py")
    options = Namespace(
        total=EVENTS,
        concurrency=8,
        url=gateway,
        batch=100,
        players=2000,
        games=5,
        api_key=None,
        max_seconds=300,
        timeout=30,
        seed=42,
    )
    tally = loadtest.Tally()
    seconds = asyncio.run(loadtest.send_all(options, tally))
    loadtest.report(options, tally, seconds)
    accepted: int = tally.events_accepted
    return accepted


def send_malformed(bootstrap: str) -> None:
    """What a misbehaving producer that bypasses the gateway might write straight to Kafka."""
    producer = Producer({"bootstrap.servers": bootstrap})
    bad = [
        b"{not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"just text"',
        b"{}",
        json.dumps(
            {
                "event_type": "match_completed",
                "player_id": "p1",
                "game_id": "g",
                "timestamp": "2026-01-01T00:00:00Z",
                "data": {"score": -5, "won": True},
            }
        ).encode(),
    ]
    for index in range(MALFORMED):
        producer.produce(TOPIC, key=f"bad-{index}", value=bad[index % len(bad)])
    producer.flush(30)


def catch_up() -> None:
    """Until the fleet has drained and scaled back down (or 150 s), its progress every 5 s."""
    burst_end = time.monotonic()
    seen_scale_down = False
    while time.monotonic() - burst_end < 150:
        items = consumers()
        lags = [lag_of(item) for item in items]
        replicas = [item.get("status", {}).get("desiredReplicas") for item in items]
        print(
            f"  {time.monotonic() - burst_end:5.0f}s  "
            + "   ".join(
                f"{item['metadata']['name']}: lag {lag if lag is not None else '?':>6} replicas {r}"
                for item, lag, r in zip(items, lags, replicas, strict=True)
            ),
            flush=True,
        )
        minimums = [item["spec"]["replicas"]["min"] for item in items]
        drained = all(lag == 0 for lag in lags)
        seen_scale_down = drained and all(r == m for r, m in zip(replicas, minimums, strict=True))
        if seen_scale_down and any("ScaledDown" in line for line in scaling_events()):
            break
        time.sleep(5)
    # The replicas scaled away stop within moments; the table below should not catch them.
    settled_by = time.monotonic() + 20
    while time.monotonic() < settled_by and not all(
        (item.get("status", {}).get("readyReplicas") or 0)
        == item.get("status", {}).get("desiredReplicas")
        for item in consumers()
    ):
        time.sleep(1)
