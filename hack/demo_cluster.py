"""What the demo asks of the stack: its names (namespace, database, topic), kubectl, the pods
and their addresses, the operator that holds the Lease, the EventConsumers' state and Events,
and the Redis dbs the modes write."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from fleetstack import deploy

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / ".stack" / "demo"
NAMESPACE = "gamemetrics"
DATABASE = "gamemetrics"
TOPIC = "player.events.raw"
SYSTEM = deploy.SYSTEM_NAMESPACE
OPERATOR_METRICS_PORT = 8081  # manifests/operator/deployment.yaml
GATEWAY_PORT = 8080  # manifests/gateway/settings.yaml
CONSUMER_PORT = 8080  # the consumer's /metrics (operator/.../builders.py HTTP_PORT)


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    binary = os.environ.get("EVENTFLEET_KUBECTL") or shutil.which("kubectl") or "kubectl"
    done = subprocess.run(
        [binary, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    if check and done.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def wait(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def leader_pod(holder: str, pods: dict[str, str]) -> str | None:
    """The address of the operator pod that holds the Lease: its identity starts with the pod's
    name (leadership.identity). `pods` maps pod names to addresses."""
    for name, address in pods.items():
        if holder.startswith(f"{name}-") and address:
            return address
    return None


def pod_addresses(namespace: str, selector: str) -> dict[str, str]:
    found = json.loads(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))
    return {
        pod["metadata"]["name"]: pod.get("status", {}).get("podIP", "")
        for pod in found["items"]
        if not pod["metadata"].get("deletionTimestamp")
    }


def operator_metrics_url() -> str | None:
    lease = json.loads(
        kubectl("get", "lease", "eventfleet-operator", "-n", SYSTEM, "-o", "json", check=False)
        or "{}"
    )
    holder = lease.get("spec", {}).get("holderIdentity") or ""
    address = leader_pod(
        holder, pod_addresses(SYSTEM, "app.kubernetes.io/name=eventfleet-operator")
    )
    return f"http://{address}:{OPERATOR_METRICS_PORT}/metrics" if address else None


def available(namespace: str, deployment: str) -> bool:
    found = json.loads(
        kubectl("get", "deployment", deployment, "-n", namespace, "-o", "json", check=False) or "{}"
    )
    status, spec = found.get("status", {}), found.get("spec", {})
    return bool(status.get("availableReplicas")) and status.get("updatedReplicas") == spec.get(
        "replicas"
    )


def redis_for(env: dict[str, str], db: int) -> redis.Redis:
    parts = urlsplit(env["EVENTFLEET_REDIS_URL"])
    return redis.Redis.from_url(urlunsplit(parts._replace(path=f"/{db}")), decode_responses=True)


def consumers() -> list[dict[str, Any]]:
    found: dict[str, Any] = json.loads(kubectl("get", "ec", "-n", NAMESPACE, "-o", "json"))
    return list(found["items"])


def all_ready() -> bool:
    items = consumers()
    return len(items) == 3 and all(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in item.get("status", {}).get("conditions", [])
        )
        for item in items
    )


def lag_of(item: dict[str, Any]) -> int | None:
    lag = item.get("status", {}).get("lag", {}).get("total")
    return lag if isinstance(lag, int) else None


def table() -> str:
    return kubectl("get", "ec", "-n", NAMESPACE)


def scaling_events() -> list[str]:
    found = json.loads(kubectl("get", "events", "-n", NAMESPACE, "-o", "json"))
    lines = []
    for event in sorted(found["items"], key=lambda e: e.get("lastTimestamp") or ""):
        if event.get("reason", "").startswith("Scaled"):
            lines.append(
                f"{(event.get('lastTimestamp') or '')[11:19]}  "
                f"{event['involvedObject']['name']:12} {event['reason']:10} "
                f"{event['message']}"
            )
    return lines
