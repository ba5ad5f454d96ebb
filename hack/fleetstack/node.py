"""A real Kubernetes node: containerd and runc (Debian's packages), the CNI bridge, a kubelet,
kube-scheduler, and a second controller-manager that runs Deployments (deployment, replicaset,
endpointslice and disruption controllers).

The node is off by default (`EVENTFLEET_NODE=1` or `hack/stack up node` turns it on). Its
controllers are a process of their own because the pod runner (hack/podrunner.py) plays the
Deployment controller for the fast inner loop: the two must never run at once, and the pod
runner's tests stop `node-controllers` first (tests/fixtures/node.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from .common import HOST, StackError, find_tool
from .component import Component
from .kubernetes import (
    PKI_DIR,
    KubeApiserver,
    KubeClientComponent,
    KubeControllerManager,
    https_get,
    kube_bin_dir,
)
from .node_network import NODE_NAME, bridge_name, node_address, pod_subnet
from .ports import port_from_env

PACKAGES_FIX = "make system-deps (apt-get install containerd runc containernetworking-plugins)"
CNI_BIN = Path("/usr/lib/cni")
PAUSE_IMAGE = "localhost/pause:local"


def node_enabled() -> bool:
    return os.environ.get("EVENTFLEET_NODE", "").lower() in {"1", "true", "yes", "on"}


def unmount_under(root: Path) -> None:
    """Lazily unmount what containers and volumes left mounted below `root`, deepest first, so
    that a stop or a reset never leaves the machine with mounts into a deleted folder."""
    with contextlib.suppress(OSError):
        mounts = [
            line.split()[1].encode().decode("unicode_escape")
            for line in Path("/proc/self/mounts").read_text().splitlines()
        ]
        for target in sorted((m for m in mounts if m.startswith(f"{root}/")), reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True, check=False)


class Containerd(Component):
    name = "containerd"
    start_timeout = 30.0
    stop_grace = 10.0

    @property
    def socket(self) -> Path:
        return self.home / "containerd.sock"

    def ports(self) -> list[int]:
        return []

    def address(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        # For `ctr --address ... --namespace k8s.io` (tests tag images with it).
        return {"EVENTFLEET_CONTAINERD_SOCKET": str(self.socket)}

    def ctr(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args]

    def prepare(self) -> None:
        for program in ("containerd", "runc", "ctr"):
            find_tool(self.name, program, PACKAGES_FIX)
        if not (CNI_BIN / "bridge").exists():
            raise StackError(self.name, f"no CNI plugins in {CNI_BIN}", fix=PACKAGES_FIX)
        if (
            not Path("/sys/fs/cgroup/memory").is_dir()
            and not Path("/sys/fs/cgroup/cgroup.controllers").exists()
        ):
            raise StackError(self.name, "no cgroup file system at /sys/fs/cgroup")
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "cni").mkdir(exist_ok=True)
        (self.home / "config.toml").write_text(self.config())
        (self.home / "cni" / "10-eventfleet.conflist").write_text(self.cni_config())

    def config(self) -> str:
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return "\n".join(
            [
                "version = 2",
                f'root = "{self.home / "root"}"',
                f'state = "{self.home / "state"}"',
                "[grpc]",
                f'  address = "{self.socket}"',
                "[ttrpc]",
                f'  address = "{self.socket}.ttrpc"',
                f"[{cri}]",
                # Built by hack/fleetstack/images.py: no registry is reachable.
                f'  sandbox_image = "{PAUSE_IMAGE}"',
                "  disable_apparmor = true",
                # Network namespaces under our state folder, not /var/run/netns.
                "  netns_mounts_under_state_dir = true",
                # Root here may lack CAP_SYS_RESOURCE (a VM's bounding set): then no process can
                # lower its OOM score, and the sandbox's -998 fails every pod ("can't get final
                # child's PID from pipe" from runc).
                "  restrict_oom_score_adj = true",
                f"[{cri}.containerd]",
                '  snapshotter = "overlayfs"',
                '  default_runtime_name = "runc"',
                f"[{cri}.containerd.runtimes.runc]",
                '  runtime_type = "io.containerd.runc.v2"',
                f"[{cri}.containerd.runtimes.runc.options]",
                # The kubelet uses the cgroupfs driver (no systemd here).
                "  SystemdCgroup = false",
                f"[{cri}.cni]",
                f'  bin_dir = "{CNI_BIN}"',
                f'  conf_dir = "{self.home / "cni"}"',
                "",
            ]
        )

    def cni_config(self) -> str:
        subnet = pod_subnet()
        return json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "eventfleet-pods",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": bridge_name(),
                        "isGateway": True,
                        # No masquerade: pods talk to the node's address and to each other only.
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": str(subnet), "gateway": node_address()}]],
                            "dataDir": str(self.home / "ipam"),
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            },
            indent=2,
        )

    def command(self) -> list[str]:
        return ["containerd", "--config", str(self.home / "config.toml")]

    def probe(self) -> str | None:
        done = subprocess.run(
            self.ctr("version"), capture_output=True, text=True, timeout=10, check=False
        )
        return None if done.returncode == 0 else f"ctr version: {done.stderr.strip()[:80]}"

    def up(self) -> str:
        done = super().up()
        from .images import ensure_pause_image  # images imports this module

        ensure_pause_image(self)
        return done

    def down(self) -> bool:
        self.kill_containers()
        stopped = super().down()
        # Shims outlive containerd by design; ours name our socket on their command line.
        for pid in self.shims():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        unmount_under(self.home)
        return stopped

    def kill_containers(self) -> None:
        """SIGKILL every container's init (the end of its PID namespace) while containerd still
        answers: a stopped stack must leave no consumer running."""
        if self.running() is None:
            return
        listed = subprocess.run(
            self.ctr("tasks", "ls", "-q"), capture_output=True, text=True, timeout=20, check=False
        )
        for task in listed.stdout.split():
            subprocess.run(
                self.ctr("tasks", "kill", "-s", "SIGKILL", task),
                capture_output=True,
                timeout=20,
                check=False,
            )
        time.sleep(0.5)

    def shims(self) -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    cmdline = (proc / "cmdline").read_bytes()
                    if b"containerd-shim" in cmdline and str(self.socket).encode() in cmdline:
                        found.append(int(proc.name))
        return found


class Kubelet(KubeClientComponent):
    """Its /healthz is on a plain-HTTP port of its own, and it is healthy only once the API
    server calls its node Ready."""

    name = "kubelet"
    kube_user = "kubelet"
    start_timeout = 120.0
    stop_grace = 15.0

    def address(self) -> str:
        return f"{node_address()}:{self.ports()[0]}"

    def ports(self) -> list[int]:
        return [
            port_from_env("EVENTFLEET_KUBELET_PORT", 20250),
            port_from_env("EVENTFLEET_KUBELET_HEALTHZ_PORT", 20248),
        ]

    def prepare(self) -> None:
        super().prepare()
        (self.home / "config.yaml").write_text(json.dumps(self.config(), indent=2))

    def config(self) -> dict[str, object]:
        port, healthz = self.ports()
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # On the bridge's address: the node's IP must not be loopback, and the API server
            # reaches the kubelet (logs, exec) at the node's IP.
            "address": node_address(),
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": HOST,
            "healthzPort": healthz,
            "containerRuntimeEndpoint": Containerd().address(),
            # The host has cgroup v1 and no systemd.
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "tlsCertFile": str(PKI_DIR / "kubelet-serving.crt"),
            "tlsPrivateKeyFile": str(PKI_DIR / "kubelet-serving.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(PKI_DIR / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            # A small development disk must not evict the tests' pods.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "resolvConf": "/etc/resolv.conf",
            "nodeStatusReportFrequency": "10s",
            "maxPods": 60,
        }

    def command(self) -> list[str]:
        return [
            str(kube_bin_dir() / "kubelet"),
            f"--config={self.home / 'config.yaml'}",
            f"--kubeconfig={self.home / 'kubeconfig'}",
            f"--root-dir={self.home / 'root'}",
            f"--cert-dir={self.home / 'certs'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={node_address()}",
            "--v=1",
        ]

    def probe(self) -> str | None:
        try:
            with urllib.request.urlopen(
                f"http://{HOST}:{self.ports()[1]}/healthz", timeout=3
            ) as answer:
                if answer.read() != b"ok":
                    return "/healthz is not ok"
        except OSError as error:
            return f"/healthz: {error}"
        node = https_get(
            f"https://{KubeApiserver().address()}/api/v1/nodes/{NODE_NAME}", client_cert="admin"
        )
        if node is None:
            return f"node {NODE_NAME} not registered yet"
        conditions = json.loads(node).get("status", {}).get("conditions", [])
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return f"node {NODE_NAME} is not Ready yet"
        return None

    def down(self) -> bool:
        stopped = super().down()
        unmount_under(self.home)
        return stopped

    def start_fix(self) -> str:
        return "read the log; containerd must be healthy first (`hack/stack status`)"


class KubeScheduler(KubeClientComponent):
    name = "kube-scheduler"
    kube_user = "kube-scheduler"
    start_timeout = 60.0

    def ports(self) -> list[int]:
        return [port_from_env("EVENTFLEET_KUBE_SCHEDULER_PORT", 20259)]

    def command(self) -> list[str]:
        return [
            str(kube_bin_dir() / "kube-scheduler"),
            f"--kubeconfig={self.home / 'kubeconfig'}",
            f"--authentication-kubeconfig={self.home / 'kubeconfig'}",
            f"--authorization-kubeconfig={self.home / 'kubeconfig'}",
            "--leader-elect=false",
            f"--bind-address={HOST}",
            f"--secure-port={self.ports()[0]}",
        ]


class NodeControllers(KubeControllerManager):
    """The controllers that turn Deployments into pods, in a controller-manager of their own
    (the stack's first one runs only what the pod runner needs beside it)."""

    name = "node-controllers"
    controllers = (
        "deployment-controller,replicaset-controller,endpoints-controller,"
        "endpointslice-controller,disruption-controller,pod-garbage-collector-controller,"
        # Lifts the not-ready taint the kubelet registers with, once the node is Ready.
        "node-lifecycle-controller,taint-eviction-controller,"
        # kube-root-ca.crt in every namespace: the service-account volume of every pod needs it.
        "root-ca-certificate-publisher-controller"
    )

    def ports(self) -> list[int]:
        return [port_from_env("EVENTFLEET_NODE_CONTROLLERS_PORT", 20258)]

    def signing_flags(self) -> list[str]:
        return []  # no token controller here: the first controller-manager signs the tokens


NODE_COMPONENTS = ("pod-network", "containerd", "kubelet", "kube-scheduler", "node-controllers")
