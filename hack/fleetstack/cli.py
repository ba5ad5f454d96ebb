"""The local stack: real PostgreSQL, Redis, Apache Kafka and Kubernetes on 127.0.0.1, owned by
this script, and on request a real node (kubelet, containerd) on a bridge of its own.

    hack/stack up       start what is not running, reuse what is healthy, repair what is half dead
    hack/stack status   one line per component with its health (exit 1 if any is unhealthy)
    hack/stack env      shell exports: the one contract tests, benchmarks and scripts read
    hack/stack down     stop exactly the processes this stack started
    hack/stack reset C  stop component C (or `all`) and delete its data
    hack/stack image    build the eventfleet image for the tree (if changed), load it into the node

The node's components (`node` names them all) start only when named or with EVENTFLEET_NODE=1.

Everything lives under `.stack/` in the repository (git-ignored): one folder per component with
its data, its log and a pid file. Downloads and builds are cached outside the repository (in
`$EVENTFLEET_CACHE`, default `~/.cache/eventfleet`), keyed by version, so a fresh clone reuses them.

Standard library only: it must run before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence

from .common import STACK_DIR, StackError, display, say
from .component import Component
from .kafka import Kafka
from .kubernetes import Etcd, KubeApiserver, KubeControllerManager, kube_bin_dir
from .node import NODE_COMPONENTS, Containerd, Kubelet, KubeScheduler, NodeControllers, node_enabled
from .node_network import PodNetwork
from .postgres import Postgres
from .redis import Redis


def components() -> list[Component]:
    postgres, redis, kafka, apiserver = Postgres(), Redis(), Kafka(), KubeApiserver()
    # What a pod reaches at the bridge's address: the same ports as on 127.0.0.1.
    routes = {
        "postgres": postgres.ports()[0],
        "redis": redis.ports()[0],
        "kafka": kafka.pod_port,
        "kube-apiserver": apiserver.ports()[0],
    }
    return [
        postgres,
        redis,
        kafka,
        Etcd(),
        apiserver,
        KubeControllerManager(),
        PodNetwork(routes),
        Containerd(),
        Kubelet(),
        KubeScheduler(),
        NodeControllers(),
    ]


def select(names: Sequence[str], *, include_running_node: bool = False) -> list[Component]:
    """The components named (`node` stands for all of the node's); without names, all of them,
    the node's only when EVENTFLEET_NODE=1 (or, for status and down, when they run)."""
    every = components()
    if not names or list(names) == ["all"]:
        node = [c for c in every if c.name in NODE_COMPONENTS]
        wanted_node = (
            node_enabled()
            or list(names) == ["all"]
            or (include_running_node and any(c.owned() is not None for c in node))
        )
        return [c for c in every if c.name not in NODE_COMPONENTS or wanted_node]
    known = {c.name: c for c in every}
    expanded = [n for name in names for n in (NODE_COMPONENTS if name == "node" else (name,))]
    unknown = [n for n in expanded if n not in known]
    if unknown:
        raise StackError(
            "stack",
            f"unknown component(s) {', '.join(unknown)}; known: {', '.join(known)}, node",
        )
    return [c for c in every if c.name in expanded]


@contextlib.contextmanager
def stack_lock() -> Iterator[None]:
    """Two `up`s at once (a test run and a demo) must not start the same server twice."""
    STACK_DIR.mkdir(parents=True, exist_ok=True)
    with (STACK_DIR / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another `hack/stack` command to finish …")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cmd_up(names: Sequence[str]) -> int:
    started = time.monotonic()
    say(f"bringing up the local stack in {display(STACK_DIR)}")
    with stack_lock():
        for component in select(names):
            step = time.monotonic()
            outcome = component.up()
            say(
                f"✓ {component.name:<24} {outcome:<44} {component.address():<22} "
                f"{time.monotonic() - step:5.1f}s"
            )
    say(f"stack ready in {time.monotonic() - started:.1f}s — `hack/stack env` prints its addresses")
    return 0


def cmd_status(names: Sequence[str]) -> int:
    healthy_all = True
    for component in select(names, include_running_node=True):
        healthy, text = component.status()
        healthy_all &= healthy
        mark = "✓" if healthy else "✗"
        say(
            f"{mark} {component.name:<24} {text:<44} {component.address():<22} "
            f"{display(component.log)}"
        )
    return 0 if healthy_all else 1


def cmd_down(names: Sequence[str]) -> int:
    with stack_lock():
        for component in reversed(select(names, include_running_node=True)):
            stopped = component.down()
            say(f"{'■ stopped' if stopped else '· was not running':<18} {component.name}")
    return 0


def cmd_reset(names: Sequence[str]) -> int:
    if not names:
        raise StackError("stack", "reset needs a component name or `all`")
    with stack_lock():
        for component in reversed(select(names)):
            component.down()
            shutil.rmtree(component.home, ignore_errors=True)
            (STACK_DIR / component.name).unlink(missing_ok=True)  # a relocation link, if any
            say(f"■ reset {component.name}: stopped and deleted {display(component.home)}")
    return 0


def stack_env() -> dict[str, str]:
    merged: dict[str, str] = {}
    for component in components():
        merged.update(component.env())
    return merged


def environment(names: Sequence[str]) -> dict[str, str]:
    """The stack's addresses for a script (what `hack/stack env` exports): from the environment
    when it holds every one of `names` (after `source <(hack/stack env)`, or pointing at another
    stack), else all of them from this stack's settings."""
    if all(os.environ.get(name) for name in names):
        return {name: os.environ[name] for name in names}
    return stack_env()


def cmd_env(*, as_json: bool) -> int:
    values = stack_env()
    if as_json:
        print(json.dumps(values, indent=2))
        return 0
    for key, value in values.items():
        print(f"export {key}={shlex.quote(value)}")
    # The stack's kubectl (the server's version) ahead of any other on PATH.
    print(f'export PATH={shlex.quote(str(kube_bin_dir()))}:"$PATH"')
    return 0


def cmd_image() -> int:
    from .images import image_command

    # Not the stack's lock: a build may run beside `up` (make test starts one while Kubernetes
    # compiles); images.py serialises builds with a lock of its own.
    return image_command()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb in ("up", "status", "down", "reset"):
        sub.add_parser(verb).add_argument("components", nargs="*")
    sub.add_parser("env").add_argument("--json", action="store_true")
    sub.add_parser("image")
    args = parser.parse_args(argv)
    handlers: dict[str, Callable[[], int]] = {
        "up": lambda: cmd_up(args.components),
        "status": lambda: cmd_status(args.components),
        "down": lambda: cmd_down(args.components),
        "reset": lambda: cmd_reset(args.components),
        "env": lambda: cmd_env(as_json=args.json),
        "image": cmd_image,
    }
    try:
        return handlers[args.verb]()
    except StackError as error:
        print(error.render(), file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
