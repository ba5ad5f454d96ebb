"""What every part of the local stack shares: where it lives, its error, and how it talks."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACK_DIR = Path(os.environ.get("EVENTFLEET_STACK_DIR", REPO / ".stack")).resolve()
CACHE_DIR = Path(
    os.environ.get("EVENTFLEET_CACHE", Path.home() / ".cache" / "eventfleet")
).resolve()
HOST = "127.0.0.1"


class StackError(Exception):
    """A component could not be brought up. The message names the component, log and fix."""

    def __init__(
        self, component: str, problem: str, log: Path | None = None, fix: str = ""
    ) -> None:
        self.component = component
        self.problem = problem
        self.log = log
        self.fix = fix
        super().__init__(f"{component}: {problem}")

    def render(self) -> str:
        lines = [f"✗ {self.component}: {self.problem}"]
        if self.log is not None:
            lines.append(f"  log: {display(self.log)}")
            tail = log_tail(self.log, 12)
            if tail:
                lines.append("  last lines of the log:")
                lines.extend(f"    | {line}" for line in tail)
        if self.fix:
            lines.append(f"  likely fix: {self.fix}")
        return "\n".join(lines)


def display(path: Path) -> str:
    """A path as a person wants to read it: relative to the repository when inside it."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(REPO))
    return str(path)


def log_tail(path: Path, count: int) -> list[str]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16_384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-count:]


def say(message: str) -> None:
    print(message, flush=True)


def find_tool(component: str, program: str, fix: str, *, why: str = "") -> str:
    """The path of `program` on PATH; a StackError saying how to install it when it is missing."""
    found = shutil.which(program)
    if found is None:
        raise StackError(component, f"{program} not found on PATH{why}", fix=fix)
    return found


@contextlib.contextmanager
def spinner(label: str) -> Iterator[None]:
    """Elapsed seconds on one terminal line while a slow step runs (plain lines when not a tty)."""
    if not sys.stdout.isatty():
        yield
        return
    import threading

    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not done.wait(1.0):
            print(f"\r  {label} … {time.monotonic() - started:.0f}s", end="", flush=True)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        print("\r\033[K", end="", flush=True)
