"""Kubernetes: etcd, kube-apiserver and kube-controller-manager (garbage collector, namespace
lifecycle, service accounts), built from the Go module proxy by hack/k8s/build and cached
outside the repository (hack/k8s/README.md). The node (kubelet, scheduler, the Deployment
controllers) is in node.py."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import ClassVar

from .common import HOST, REPO, STACK_DIR, StackError, display, say
from .component import Component
from .node_network import node_address
from .ports import port_from_env
from .processes import run_quiet

K8S_DIR = REPO / "hack" / "k8s"
PKI_DIR = STACK_DIR / "pki"
KUBECONFIG = STACK_DIR / "kubeconfig"
KUBE_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
    "kubelet",
    "kube-scheduler",
)


def kube_bin_dir() -> Path:
    found = subprocess.run(
        [str(K8S_DIR / "build"), "--print-bin-dir"], capture_output=True, text=True, check=False
    )
    return Path(found.stdout.strip())


def ensure_kube_binaries(component: str) -> Path:
    """Build (cold: ~9 minutes) or reuse the binaries; the build prints its own progress."""
    bindir = kube_bin_dir()
    if all((bindir / name).is_file() for name in KUBE_BINARIES):
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
    """Idempotent and quick once done (each certificate is checked, not re-issued): run it
    every time, so that a stack made before the node existed gets the node's certificates."""
    run_quiet(
        ["env", f"NODE_ADDRESS={node_address()}", str(K8S_DIR / "pki"), str(PKI_DIR)],
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
            # Node: the kubelet's own objects; RBAC: everyone else.
            "--authorization-mode=Node,RBAC",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
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


class KubeClientComponent(Component):
    """A Kubernetes program that talks to the API server as a user of its own (its kubeconfig
    in its home) and serves /healthz on its secure port."""

    kube_user: ClassVar[str]

    def prepare(self) -> None:
        ensure_kube_binaries(self.name)
        ensure_pki(self.name)
        write_kubeconfig(self.home / "kubeconfig", self.kube_user, KubeApiserver().ports()[0])

    def probe(self) -> str | None:
        # The serving certificate is one the program made for itself: nothing to verify against.
        answer = https_get(f"https://{self.address()}/healthz", verify=False)
        return None if answer == "ok" else "/healthz is not ok yet"


class KubeControllerManager(KubeClientComponent):
    """Only controllers that make sense without nodes: garbage collection of owned objects,
    namespace lifecycle, service accounts. Deployments are run by hack/podrunner.py."""

    name = "kube-controller-manager"
    kube_user = "kube-controller-manager"
    start_timeout = 60.0
    controllers: ClassVar[str] = (
        "garbage-collector-controller,namespace-controller,serviceaccount-controller,"
        "serviceaccount-token-controller"
    )

    def ports(self) -> list[int]:
        return [port_from_env("EVENTFLEET_KUBE_CONTROLLER_MANAGER_PORT", 20257)]

    def signing_flags(self) -> list[str]:
        """The service-account token controller signs tokens with the stack's key (a
        controller-manager that does not run it needs none)."""
        return [f"--service-account-private-key-file={PKI_DIR / 'sa.key'}"]

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
            *self.signing_flags(),
            f"--root-ca-file={PKI_DIR / 'ca.crt'}",
        ]
