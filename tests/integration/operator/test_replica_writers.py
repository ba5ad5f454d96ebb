"""One writer decides replicas: while the autoscaler scales a Deployment up, the watch event of
its own apply must not set the replicas back (which would cost a pod churn and a consumer-group
rebalance per scale)."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client, watch

from tests.fixtures.stack import Stack
from tests.fixtures.waiting import wait_for
from tests.integration.operator.cluster import Cluster, body, produce, scaled_from_zero

pytestmark = pytest.mark.usefixtures("operator", "podrunner")


def record_replicas(
    apps: client.AppsV1Api, namespace: str, name: str, seen: list[int], stop: threading.Event
) -> None:
    """Every spec.replicas the Deployment takes, in order, until `stop`."""
    watcher = watch.Watch()
    while not stop.is_set():
        for event in watcher.stream(
            apps.list_namespaced_deployment,
            namespace,
            field_selector=f"metadata.name={name}",
            timeout_seconds=2,
        ):
            replicas = event["object"].spec.replicas
            if not seen or seen[-1] != replicas:
                seen.append(replicas)
            if stop.is_set():
                watcher.stop()


def test_a_scale_up_under_lag_never_sets_replicas_back(
    cluster: Cluster, stack: Stack, topic_name: str
) -> None:
    from_zero = scaled_from_zero(
        6,
        100,
        maxScaleUpStep=6,
        scaleDownStabilizationSeconds=600,  # no scale-down in the test
    )
    cluster.create(
        body(cluster.namespace, "logger", stack, topic_name, topic={"partitions": 6}, **from_zero)
    )
    cluster.wait_condition("logger", "Ready", "True")
    seen: list[int] = []
    stop = threading.Event()
    recorder = threading.Thread(
        target=record_replicas,
        args=(cluster.apps, cluster.namespace, "logger-consumer", seen, stop),
        daemon=True,
    )
    recorder.start()
    try:
        produce(stack, topic_name, 3000)  # 3000 / 100 per replica: 6 (the partitions)
        wait_for(
            lambda: cluster.get("logger")["status"].get("desiredReplicas", 0) == 6,
            timeout=60,
            what="the scale-up to 6",
        )
        time.sleep(6)  # three more loop ticks: a set-back would land in them
    finally:
        stop.set()
        recorder.join(timeout=10)
    assert seen[-1] == 6, seen
    assert seen == sorted(seen), f"spec.replicas went back during the scale-up: {seen}"
