"""The local pod runner: a development tool, not part of the product.

The local Kubernetes API has no kubelet, so nothing would ever run a Deployment's pods. This tool
plays kubelet and Deployment controller for the Deployments the eventfleet operator manages:

- every replica of a Deployment's pod template runs as a local process with the container's
  command, args and env (Secret and ConfigMap references resolved through the API);
- Secret volumes are written as files (mode 0600) into a folder per replica, and env values
  that name a path under their mountPath point into that folder instead;
- each replica gets its own HTTP port (EVENTFLEET_HTTP_PORT, and the probes follow it), since
  local processes share one network namespace;
- crashed replicas are restarted with a back-off; replica changes start or stop processes (so
  autoscaling really adds and removes consumers); a changed pod template restarts them; a deleted
  Deployment stops them;
- Deployment status (replicas, readyReplicas from the readiness probe, availableReplicas,
  observedGeneration) is written through the status subresource, so the operator and kubectl
  see the truth.

    python hack/podrunner.py [--selector LABELS] [--namespace GLOB]

SIGTERM or Ctrl-C stops every process it started (SIGTERM, grace period, then SIGKILL). If the
runner dies any other way (SIGKILL, a crash), the kernel sends its replicas SIGTERM: no consumer
outlives the runner that would have restarted or stopped it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import fnmatch
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetstack.ports import free_port
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("podrunner")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LIBC = ctypes.CDLL(None, use_errno=True)
DEFAULT_SELECTOR = "app.kubernetes.io/managed-by=eventfleet-operator"
PORT_VARIABLE = "EVENTFLEET_HTTP_PORT"
MAX_BACKOFF_SECONDS = 30.0


def _dying_with(parent: int) -> None:
    """In a replica, between fork and exec: SIGTERM when the runner dies. The runner's only
    thread starts replicas, so the signal follows the runner's life, not a thread's."""
    if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        os._exit(127)
    if os.getppid() != parent:  # the runner died before the request took effect
        os._exit(0)


def status_is_current(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the Deployment's stored status already says what `wanted` says. The API server
    leaves zero counts out (omitempty), so a missing count reads as 0; otherwise every pass
    would patch the status again, and each patch wakes every watcher (the operator's included)."""
    counts_match = all(
        current.get(name, 0) == value for name, value in wanted.items() if name != "conditions"
    )
    condition = (current.get("conditions") or [{}])[0].get("status")
    return counts_match and condition == wanted["conditions"][0]["status"]


@dataclass
class Replica:
    """One local process standing in for one pod."""

    deployment: str  # namespace/name
    index: int
    template_hash: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    log_path: Path | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Runner:
    core: client.CoreV1Api
    apps: client.AppsV1Api
    selector: str
    log_dir: Path
    namespace_glob: str = "*"
    replicas: dict[str, list[Replica]] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    # ------------------------------------------------------------------ the pod template
    def resolve_env(self, namespace: str, container: dict[str, Any], port: int) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("EVENTFLEET_")}
        for item in container.get("env") or []:
            name = item["name"]
            if "value" in item:
                env[name] = str(item["value"])
                continue
            source = item.get("valueFrom") or {}
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = self.core.read_namespaced_secret(ref["name"], namespace)
                env[name] = base64.b64decode((secret.data or {})[ref["key"]]).decode()
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                found = self.core.read_namespaced_config_map(ref["name"], namespace)
                env[name] = (found.data or {})[ref["key"]]
        env[PORT_VARIABLE] = str(port)
        return env

    def mount_secrets(
        self, namespace: str, pod: dict[str, Any], container: dict[str, Any], replica: Replica
    ) -> dict[str, str]:
        """Each Secret volume the container mounts, as files in a folder of the replica's own:
        {mountPath: folder}."""
        volumes = {v["name"]: v for v in pod.get("volumes") or [] if "secret" in v}
        mounted: dict[str, str] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None:
                continue
            secret = self.core.read_namespaced_secret(volume["secret"]["secretName"], namespace)
            folder = (
                self.log_dir
                / "volumes"
                / f"{replica.deployment.replace('/', '_')}-{replica.index}"
                / mount["name"]
            )
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, mode=0o700)
            for key, value in (secret.data or {}).items():
                path = folder / key
                path.write_bytes(base64.b64decode(value))
                path.chmod(0o600)
            mounted[mount["mountPath"].rstrip("/")] = str(folder)
        return mounted

    def start(self, replica: Replica, deployment: dict[str, Any]) -> None:
        namespace = deployment["metadata"]["namespace"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        if not argv:
            log.error("%s: container has no command; cannot run it locally", replica.deployment)
            return
        # The image's commands live in the virtualenv this runner runs from.
        venv_bin = str(Path(sys.executable).parent)
        executable = shutil.which(argv[0], path=f"{venv_bin}:{os.environ.get('PATH', '')}")
        if executable is None:
            log.error("%s: %s not found on PATH", replica.deployment, argv[0])
            replica.next_start = time.monotonic() + MAX_BACKOFF_SECONDS
            return
        try:
            env = self.resolve_env(namespace, container, replica.port)
            pod = deployment["spec"]["template"]["spec"]
            for mount_path, folder in self.mount_secrets(
                namespace, pod, container, replica
            ).items():
                for name, value in env.items():
                    if value == mount_path or value.startswith(mount_path + "/"):
                        env[name] = folder + value[len(mount_path) :]
        except (ApiException, KeyError) as error:
            log.warning("%s: cannot resolve env (%s); retrying", replica.deployment, error)
            replica.next_start = time.monotonic() + 5
            return
        name = replica.deployment.replace("/", "_")
        replica.log_path = self.log_dir / f"{name}-{replica.index}.log"
        with replica.log_path.open("ab") as out:
            try:
                replica.process = subprocess.Popen(
                    [executable, *argv[1:]],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=functools.partial(_dying_with, os.getpid()),  # noqa: PLW1509 - one thread
                )
            except OSError as error:
                log.error("%s: cannot start %s: %s", replica.deployment, executable, error)  # noqa: TRY400 - the reason suffices
                replica.next_start = time.monotonic() + MAX_BACKOFF_SECONDS
                return
        log.info(
            "%s: replica %d started (pid %d, port %d)",
            replica.deployment,
            replica.index,
            replica.process.pid,
            replica.port,
        )

    def stop(self, replica: Replica, grace: float) -> None:
        process = replica.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        log.info(
            "%s: replica %d stopped (exit %s)",
            replica.deployment,
            replica.index,
            process.returncode,
        )

    # ------------------------------------------------------------------ one pass
    def ready(self, replica: Replica, deployment: dict[str, Any]) -> bool:
        if not replica.alive:
            return False
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        probe = (container.get("readinessProbe") or {}).get("httpGet")
        if probe is None:
            return True
        url = f"http://127.0.0.1:{replica.port}{probe.get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                return bool(200 <= answer.status < 400)
        except OSError:
            return False

    def sync(self, deployment: dict[str, Any]) -> None:
        meta = deployment["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        template = deployment["spec"]["template"]
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[
            :12
        ]
        wanted = int(deployment["spec"].get("replicas") or 0)
        grace = float(template["spec"].get("terminationGracePeriodSeconds") or 30)
        running = self.replicas.setdefault(key, [])

        # A changed pod template: replace every replica (a simple Recreate roll-out).
        outdated = [r for r in running if r.template_hash != template_hash]
        for replica in outdated:
            self.stop(replica, grace)
            running.remove(replica)
        while len(running) > wanted:
            self.stop(running.pop(), grace)
        while len(running) < wanted:
            running.append(Replica(key, len(running), template_hash, free_port()))

        now = time.monotonic()
        for replica in running:
            if replica.alive or now < replica.next_start:
                continue
            if replica.process is not None:  # it ran and exited: a crash
                replica.restarts += 1
                delay = min(2.0**replica.restarts, MAX_BACKOFF_SECONDS)
                log.warning(
                    "%s: replica %d exited with %s; restart %d in %.0fs (log %s)",
                    key,
                    replica.index,
                    replica.process.returncode,
                    replica.restarts,
                    delay,
                    replica.log_path,
                )
                replica.process = None
                replica.next_start = now + delay
                continue
            self.start(replica, deployment)

        ready = sum(1 for r in running if self.ready(r, deployment))
        self.write_status(deployment, len(running), ready)

    def write_status(self, deployment: dict[str, Any], replicas: int, ready: int) -> None:
        meta = deployment["metadata"]
        wanted = int(deployment["spec"].get("replicas") or 0)
        available = ready >= min(1, wanted) if wanted else True
        status = {
            "observedGeneration": meta.get("generation", 0),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(wanted - ready, 0),
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": "MinimumReplicasAvailable"
                    if available
                    else "MinimumReplicasUnavailable",
                    "message": f"{ready}/{wanted} replicas ready (local pod runner)",
                }
            ],
        }
        if status_is_current(deployment.get("status") or {}, status):
            return
        try:
            self.apps.patch_namespaced_deployment_status(
                meta["name"], meta["namespace"], {"status": status}
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def forget_deleted(self, present: set[str]) -> None:
        for key in list(self.replicas):
            if key not in present:
                for replica in self.replicas.pop(key):
                    self.stop(replica, 10)
                log.info("%s: Deployment deleted; its replicas are stopped", key)

    def run(self, interval: float) -> None:
        api = client.ApiClient()
        while not self.stopping.is_set():
            try:
                found = self.apps.list_deployment_for_all_namespaces(label_selector=self.selector)
                deployments = [api.sanitize_for_serialization(d) for d in found.items]
                present = set()
                for deployment in deployments:
                    meta = deployment["metadata"]
                    if meta.get("deletionTimestamp") or not fnmatch.fnmatchcase(
                        meta["namespace"], self.namespace_glob
                    ):
                        continue
                    present.add(f"{meta['namespace']}/{meta['name']}")
                    self.sync(deployment)
                self.forget_deleted(present)
            except ApiException as error:
                log.warning("Kubernetes API error: %s %s; retrying", error.status, error.reason)
            except OSError as error:
                log.warning("Kubernetes API unreachable (%s); retrying", error)
            self.stopping.wait(interval)
        for running in self.replicas.values():
            for replica in running:
                self.stop(replica, 10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--selector",
        default=DEFAULT_SELECTOR,
        help=f"label selector of the Deployments to run (default {DEFAULT_SELECTOR})",
    )
    parser.add_argument(
        "--namespace",
        default="*",
        metavar="GLOB",
        help="only Deployments in namespaces matching this pattern (default *)",
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between passes")
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=Path(".stack/podrunner"),
        help="where each replica's output goes",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s podrunner %(message)s")
    config.load_kube_config()
    args.log_dir.mkdir(parents=True, exist_ok=True)
    runner = Runner(
        client.CoreV1Api(), client.AppsV1Api(), args.selector, args.log_dir, args.namespace
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stopping.set())
    log.info("running Deployments matching %s", args.selector)
    runner.run(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
