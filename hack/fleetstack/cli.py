"""The local stack: real PostgreSQL, Redis and Apache Kafka on 127.0.0.1, owned by this script.

    hack/stack up       start what is not running, reuse what is healthy, repair what is half dead
    hack/stack status   one line per component with its health (exit 1 if any is unhealthy)
    hack/stack env      shell exports: the one contract tests, benchmarks and scripts read
    hack/stack down     stop exactly the processes this stack started
    hack/stack reset C  stop component C (or `all`) and delete its data

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
from .postgres import Postgres
from .redis import Redis


def components() -> list[Component]:
    return [Postgres(), Redis(), Kafka(), Etcd(), KubeApiserver(), KubeControllerManager()]


def select(names: Sequence[str]) -> list[Component]:
    every = components()
    if not names or list(names) == ["all"]:
        return every
    known = {c.name: c for c in every}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StackError(
            "stack", f"unknown component(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return [known[n] for n in names]


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
    for component in select(names):
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
        for component in reversed(select(names)):
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb in ("up", "status", "down", "reset"):
        sub.add_parser(verb).add_argument("components", nargs="*")
    sub.add_parser("env").add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    handlers: dict[str, Callable[[], int]] = {
        "up": lambda: cmd_up(args.components),
        "status": lambda: cmd_status(args.components),
        "down": lambda: cmd_down(args.components),
        "reset": lambda: cmd_reset(args.components),
        "env": lambda: cmd_env(as_json=args.json),
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
