"""A clean slate for the demo, and eventfleet deployed on the node: the processes an older demo
left, the demo's namespaces, topic, database and Redis dbs reset; the CRD, the namespace and its
Secrets; `kubectl apply -k manifests/`; the samples tuned to show scaling."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from confluent_kafka.admin import AdminClient
from demo_cluster import (
    DATABASE,
    DEMO_DIR,
    NAMESPACE,
    REPO,
    SYSTEM,
    TOPIC,
    kubectl,
    redis_for,
    wait,
)
from demo_report import say
from fleetstack import deploy
from psycopg2 import sql


def stop_demo_processes() -> None:
    """Local processes an older demo started (it ran the operator and gateway on the host)."""
    for pidfile in DEMO_DIR.glob("*.pid"):
        try:
            pid = int(pidfile.read_text())
            os.killpg(pid, signal.SIGTERM)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        else:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state == "Z":
                    break
                time.sleep(0.2)
        pidfile.unlink(missing_ok=True)


def reset(env: dict[str, str]) -> str:
    """A clean slate; returns the demo database's DSN."""
    delete_deployed()
    admin = AdminClient({"bootstrap.servers": env["EVENTFLEET_KAFKA_BOOTSTRAP"]})
    if TOPIC in admin.list_topics(timeout=10).topics:
        admin.delete_topics([TOPIC])[TOPIC].result(30)
        wait("the old topic to go", lambda: TOPIC not in admin.list_topics(timeout=10).topics, 30)
    connection = psycopg2.connect(env["EVENTFLEET_POSTGRES_DSN"])
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
        )
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    connection.close()
    for db in (0, 1):
        redis_for(env, db).flushdb()
    parts = urlsplit(env["EVENTFLEET_POSTGRES_DSN"])
    return urlunsplit(parts._replace(path=f"/{DATABASE}"))


def delete_deployed() -> None:
    """The demo's namespace and eventfleet's own (the operator and gateway pods), waited for."""
    for namespace in (NAMESPACE, SYSTEM):
        if kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name"):
            kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s")


def install_crd_and_secrets(env: dict[str, str], dsn: str) -> None:
    """The CRD, Established; the demo's namespace with the Secrets its samples reference (the
    stack's addresses as a pod reaches them)."""
    node_address = env["EVENTFLEET_NODE_ADDRESS"]  # where pods find the stack
    kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        str(REPO / "crds" / "eventconsumers.eventfleet.dev.yaml"),
    )
    kubectl("wait", "--for=condition=Established", "crd/eventconsumers.eventfleet.dev")
    kubectl("create", "namespace", NAMESPACE)
    kubectl(
        "create",
        "secret",
        "generic",
        "gamemetrics-db",
        "-n",
        NAMESPACE,
        f"--from-literal=dsn={deploy.from_pod(dsn, node_address)}",
    )
    kubectl(
        "create",
        "secret",
        "generic",
        "gamemetrics-redis",
        "-n",
        NAMESPACE,
        f"--from-literal=url={deploy.from_pod(env['EVENTFLEET_REDIS_URL'], node_address)}",
    )
    say(f"CRD installed; namespace {NAMESPACE} with Secrets gamemetrics-db and gamemetrics-redis")


def deploy_eventfleet(env: dict[str, str]) -> None:
    """`kubectl apply -k` of manifests/ with the node's overlay (hack/fleetstack/deploy.py)."""
    image = (
        subprocess.run(
            [str(REPO / "hack" / "stack"), "image"], capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    work = DEMO_DIR / "deploy"
    work.mkdir(parents=True, exist_ok=True)
    server = re.search(r"server: https://[^:]+:(\d+)", Path(env["KUBECONFIG"]).read_text())
    (work / "kustomization.yaml").write_text(
        deploy.overlay(
            image=image,
            node_address=env["EVENTFLEET_NODE_ADDRESS"],
            apiserver_port=int(server[1]) if server else 0,
            kafka_bootstrap=env["EVENTFLEET_KAFKA_POD_BOOTSTRAP"],
            gateway_topic=TOPIC,
            workdir=work,
            # Only the demo's namespace: a test run on the same stack is never disturbed.
            watch=["--namespace", NAMESPACE],
        )
    )
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(work))
    say(f"kubectl apply -k manifests/ (image {image}, overlay {display(work)})")


def display(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def sample(name: str, bootstrap: str) -> dict[str, Any]:
    """A sample from manifests/samples, pointed at the local Kafka and tuned to show scaling."""
    import yaml  # noqa: PLC0415 - the dev dependency, loaded only here

    body: dict[str, Any] = yaml.safe_load(
        (REPO / "manifests" / "samples" / f"{name}.yaml").read_text()
    )
    body["spec"]["kafka"]["bootstrapServers"] = bootstrap
    body["spec"]["autoscaling"] = {
        "pollIntervalSeconds": 5,
        "lagPerReplica": 500,
        "scaleDownStabilizationSeconds": 20,
    }
    return body
