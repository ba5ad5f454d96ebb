"""Images for the node, built on this machine: no image registry is reachable.

- `localhost/pause:local`: the pod sandbox, a static binary of hack/node/pause.c.
- `localhost/eventfleet-base:<hash>`: Debian bookworm (minbase) with Python 3.11 and pip, made
  by mmdebstrap from Debian's packages; the hash is of its package list.
- `localhost/eventfleet:<hash>`: the project's Dockerfile built by buildah FROM that base; the
  hash is of the Dockerfile, the base and every source file the image copies, so an unchanged
  tree is never rebuilt.

Built images stay in buildah's storage under the cache (`$EVENTFLEET_CACHE/images`), shared by
every clone; `load` puts one into the node's containerd.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .common import CACHE_DIR, REPO, STACK_DIR, StackError, find_tool, say, spinner
from .node import PAUSE_IMAGE, Containerd

IMAGES = CACHE_DIR / "images"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "passwd", "ca-certificates")
SOURCES = ("Dockerfile", ".dockerignore", "pyproject.toml", "constraints.txt", "README.md")
SOURCE_DIRS = ("cli", "contract", "operator", "consumer", "gateway")
BUILD_FIX = "make system-deps (apt-get install buildah mmdebstrap)"
# pip inside the build trusts what this machine trusts (a private index or a TLS-inspecting
# proxy has its CA here); mounted for the RUN steps only, never stored in the image.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def buildah(*args: str) -> list[str]:
    return [
        "buildah",
        "--root",
        str(IMAGES / "storage"),
        "--runroot",
        str(STACK_DIR / "buildah-run"),
        "--storage-driver",
        "overlay",
        *args,
    ]


def run_step(cmd: list[str], what: str, log: Path, timeout: float = 900) -> str:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    with log.open("a") as out:
        out.write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise StackError("image", f"{what} failed (exit {done.returncode})", log)
    return done.stdout.strip()


def has_image(name: str) -> bool:
    return (
        subprocess.run(buildah("inspect", name), capture_output=True, check=False).returncode == 0
    )


def base_tag() -> str:
    digest = hashlib.sha256(f"{SUITE} minbase {' '.join(BASE_PACKAGES)}".encode()).hexdigest()
    return f"localhost/eventfleet-base:{digest[:12]}"


def source_files() -> list[Path]:
    files = [REPO / name for name in SOURCES if (REPO / name).exists()]
    for folder in SOURCE_DIRS:
        files += [
            path
            for path in (REPO / folder).rglob("*")
            if path.is_file()
            and "__pycache__" not in path.parts
            and not any(part.endswith(".egg-info") for part in path.parts)
        ]
    return sorted(files)


def image_tag() -> str:
    """The eventfleet image's tag for the tree as it is now (cheap: no build)."""
    digest = hashlib.sha256(base_tag().encode())
    for path in source_files():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return f"localhost/eventfleet:{digest.hexdigest()[:12]}"


def build_base(log: Path) -> str:
    tag = base_tag()
    if has_image(tag):
        return tag
    find_tool("image", "mmdebstrap", BUILD_FIX)
    rootfs = IMAGES / f"{tag.rsplit(':', 1)[1]}.rootfs.tar"
    if not rootfs.exists():
        partial = rootfs.with_suffix(".partial")
        with spinner(f"debian {SUITE} with {', '.join(BASE_PACKAGES)} (mmdebstrap)"):
            run_step(
                [
                    "mmdebstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    SUITE,
                    str(partial),
                ],
                "mmdebstrap",
                log,
            )
        partial.rename(rootfs)
    container = run_step(buildah("from", "scratch"), "buildah from scratch", log)
    try:
        run_step(buildah("add", container, str(rootfs), "/"), "adding the root file system", log)
        run_step(
            buildah(
                "config",
                # Like the python image: pip installs into the system's Python.
                "--env",
                "PIP_BREAK_SYSTEM_PACKAGES=1",
                "--env",
                "PIP_DISABLE_PIP_VERSION_CHECK=1",
                "--env",
                "PYTHONDONTWRITEBYTECODE=1",
                "--cmd",
                '["python3"]',
                container,
            ),
            "configuring the base image",
            log,
        )
        run_step(buildah("commit", "--quiet", container, tag), "committing the base image", log)
    finally:
        subprocess.run(buildah("rm", container), capture_output=True, check=False)
    return tag


def build_image(log: Path) -> str:
    """The eventfleet image for the current tree; built only when its tag is not there yet."""
    find_tool("image", "buildah", BUILD_FIX)
    tag = image_tag()
    if has_image(tag):
        return tag
    base = build_base(log)
    with spinner(f"building {tag} from the Dockerfile (buildah)"):
        run_step(
            buildah(
                "bud",
                "--quiet",
                "--layers",
                "--isolation",
                "chroot",
                "--build-arg",
                f"BASE={base}",
                *(
                    ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
                    if HOST_CA_BUNDLE.exists()
                    else []
                ),
                "--tag",
                tag,
                "--file",
                str(REPO / "Dockerfile"),
                str(REPO),
            ),
            "buildah bud",
            log,
            timeout=1800,
        )
    return tag


def build_pause(log: Path) -> None:
    if has_image(PAUSE_IMAGE):
        return
    gcc = find_tool("image", "gcc", "apt-get install gcc libc6-dev")
    binary = IMAGES / "pause"
    IMAGES.mkdir(parents=True, exist_ok=True)
    run_step(
        [gcc, "-static", "-O2", "-s", "-o", str(binary), str(REPO / "hack" / "node" / "pause.c")],
        "compiling pause",
        log,
    )
    container = run_step(buildah("from", "scratch"), "buildah from scratch", log)
    try:
        run_step(buildah("copy", container, str(binary), "/pause"), "copying pause", log)
        run_step(
            buildah("config", "--entrypoint", '["/pause"]', container), "configuring pause", log
        )
        run_step(buildah("commit", "--quiet", container, PAUSE_IMAGE), "committing pause", log)
    finally:
        subprocess.run(buildah("rm", container), capture_output=True, check=False)


def in_containerd(containerd: Containerd, name: str) -> bool:
    listed = subprocess.run(
        containerd.ctr("images", "ls", "-q"), capture_output=True, text=True, check=False
    )
    return name in listed.stdout.split()


def load(containerd: Containerd, name: str, log: Path) -> None:
    """Put a built image into the node's containerd (its k8s.io namespace), once."""
    if in_containerd(containerd, name):
        return
    archive = STACK_DIR / f"image-export-{os.getpid()}.tar"
    archive.unlink(missing_ok=True)
    try:
        run_step(
            buildah("push", "--quiet", name, f"oci-archive:{archive}:{name}"),
            f"exporting {name}",
            log,
        )
        run_step(containerd.ctr("images", "import", str(archive)), f"importing {name}", log)
    finally:
        archive.unlink(missing_ok=True)


def ensure_pause_image(containerd: Containerd) -> None:
    log = containerd.home / "images.log"
    build_pause(log)
    load(containerd, PAUSE_IMAGE, log)


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One build at a time (a background build started early, and the one that needs it)."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    with (IMAGES / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def image_command() -> int:
    """`hack/stack image`: build the eventfleet image if the tree changed; load it into the
    node's containerd when the node runs. Prints the tag last."""
    log = STACK_DIR / "image.log"
    started = time.monotonic()
    with build_lock():  # held while loading too: two loads of one image would collide
        tag = build_image(log)
        containerd = Containerd()
        if containerd.running() is not None:
            load(containerd, tag, log)
            where = "built and loaded into the node"
        else:
            where = "built (the node is not running: `hack/stack up node` loads it)"
    say(f"✓ image {tag} {where} in {time.monotonic() - started:.1f}s")
    print(tag)
    return 0
