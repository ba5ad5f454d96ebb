"""Processes the stack owns. A pid file records the pid *and* the kernel's start time of that
process, so a recycled pid that now belongs to something else is never signalled."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from .common import StackError


@dataclass(frozen=True)
class OwnedProcess:
    pid: int
    start_ticks: int

    @staticmethod
    def start_ticks_of(pid: int) -> int | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # Field 22 (starttime) counted after the parenthesised command name, which may hold spaces.
        return int(stat.rsplit(")", 1)[1].split()[19])

    @classmethod
    def of(cls, pid: int) -> OwnedProcess | None:
        ticks = cls.start_ticks_of(pid)
        return None if ticks is None else cls(pid, ticks)

    def alive(self) -> bool:
        if self.start_ticks_of(self.pid) != self.start_ticks:
            return False
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            return state != "Z"
        return False

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM, wait up to the grace period, then SIGKILL the whole process group."""
        for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
            if not self.alive():
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self.alive():
                time.sleep(0.1)


def stop_child(process: subprocess.Popen[bytes], grace_seconds: float = 30.0) -> None:
    """Stop a child process a script started itself (no pid file needed): SIGTERM, and SIGKILL
    once `grace_seconds` have passed without it exiting."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class DropPrivileges(TypedDict, total=False):
    """subprocess arguments that run a child as an unprivileged service user."""

    user: str
    group: str
    extra_groups: list[str]


def run_quiet(
    cmd: Sequence[str],
    log: Path,
    component: str,
    what: str,
    *,
    timeout: float,
    stdin_bytes: bytes | None = None,
    privileges: DropPrivileges | None = None,
) -> None:
    """Run a preparation step, its output appended to the component's log; raise on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {shlex.join(cmd)}\n".encode())
        out.flush()
        try:
            code = subprocess.run(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                input=stdin_bytes,
                timeout=timeout,
                check=False,
                **(privileges or {}),
            ).returncode
        except subprocess.TimeoutExpired:
            raise StackError(component, f"{what} timed out", log) from None
    if code != 0:
        raise StackError(component, f"{what} failed (exit {code})", log)
