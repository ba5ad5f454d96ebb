"""A component of the stack. Each knows how to prepare itself (install checks, downloads, data
init), the command that runs it in the foreground, and how to tell that it is healthy; the
machinery here starts, reuses, repairs and stops it."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import time
from typing import ClassVar

from .common import HOST, STACK_DIR, StackError, say
from .ports import listener_of, port_is_free, serves_port
from .processes import DropPrivileges, OwnedProcess


class Component:
    name: ClassVar[str]
    start_timeout: ClassVar[float] = 60.0
    stop_grace: ClassVar[float] = 20.0
    run_as: ClassVar[str | None] = None  # user to drop to when started as root

    def __init__(self) -> None:
        self.home = STACK_DIR / self.name
        self.log = self.home / f"{self.name}.log"
        self.pidfile = self.home / "pid.json"

    # What a component provides.
    def ports(self) -> list[int]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Idempotent: install checks, downloads and data initialisation before the first start."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def probe(self) -> str | None:
        """None when healthy, else what is wrong (one short line)."""
        raise NotImplementedError

    def address(self) -> str:
        return f"{HOST}:{self.ports()[0]}"

    def health(self, proc: OwnedProcess) -> str | None:
        """The probe, plus: the answer must come from our process, not another on the port (a
        component without a port on 127.0.0.1, a socket file say, is its probe alone)."""
        if self.ports() and not serves_port(proc.pid, self.ports()[0]):
            return f"port {self.ports()[0]} is served by {listener_of(self.ports()[0])}, not by us"
        return self.probe()

    def env(self) -> dict[str, str]:
        return {}

    def start_fix(self) -> str:
        return f"read the log; if the data is damaged, `hack/stack reset {self.name}` wipes it"

    # Shared machinery.
    def owned(self) -> OwnedProcess | None:
        try:
            data = json.loads(self.pidfile.read_text())
            return OwnedProcess(int(data["pid"]), int(data["start_ticks"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            # A damaged pid file owns nothing we could safely signal.
            self.pidfile.unlink(missing_ok=True)
            return None

    def running(self) -> OwnedProcess | None:
        proc = self.owned()
        return proc if proc is not None and proc.alive() else None

    def privileges(self) -> DropPrivileges:
        if self.run_as is None or os.geteuid() != 0:
            return {}
        return {"user": self.run_as, "group": self.run_as, "extra_groups": []}

    def chown_home(self) -> None:
        if self.run_as is not None and os.geteuid() == 0:
            for path in [self.home, *self.home.rglob("*")]:
                shutil.chown(path, self.run_as, self.run_as)

    def launch(self) -> OwnedProcess:
        for port in self.ports():
            if not port_is_free(port):
                raise StackError(
                    self.name,
                    f"port {HOST}:{port} is already in use by {listener_of(port)}",
                    fix="stop that process, or choose other ports through the "
                    "EVENTFLEET_*_PORT variables (see `hack/stack env`)",
                )
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(
                f"\n==== {time.strftime('%F %T')} start: {shlex.join(self.command())}\n".encode()
            )
            out.flush()
            try:
                child = subprocess.Popen(
                    self.command(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.home,
                    start_new_session=True,
                    **self.privileges(),
                )
            except OSError as error:
                raise StackError(self.name, f"cannot execute: {error}", self.log) from error
        proc = OwnedProcess.of(child.pid)
        if proc is None:
            raise StackError(self.name, "exited at once", self.log, self.start_fix())
        self.pidfile.write_text(
            json.dumps(
                {"pid": proc.pid, "start_ticks": proc.start_ticks, "command": self.command()}
            )
        )
        return proc

    def started_with_other_command(self) -> bool:
        """Whether the running process was started with another command line than today's (a
        flag added since): `up` restarts it rather than reuse a stale configuration."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            recorded = json.loads(self.pidfile.read_text()).get("command")
            return recorded is not None and recorded != self.command()
        return False

    def wait_healthy(self, proc: OwnedProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        problem = "no answer yet"
        while time.monotonic() < deadline:
            if not proc.alive():
                self.pidfile.unlink(missing_ok=True)
                raise StackError(
                    self.name, "the process exited while starting", self.log, self.start_fix()
                )
            found = self.health(proc)
            if found is None:
                return
            problem = found
            time.sleep(0.25)
        proc.stop(self.stop_grace)
        self.pidfile.unlink(missing_ok=True)
        raise StackError(
            self.name,
            f"not healthy after {timeout:.0f}s ({problem}); stopped it",
            self.log,
            self.start_fix(),
        )

    def up(self) -> str:
        """Bring the component to healthy; return what was done, for the progress line."""
        proc = self.running()
        if proc is not None and self.started_with_other_command():
            say(f"  {self.name}: its command line changed since it started; restarting it")
            proc.stop(self.stop_grace)
            self.pidfile.unlink(missing_ok=True)
            proc = None
        if proc is not None:
            problem = self.health(proc)
            if problem is None:
                return f"reused (pid {proc.pid})"
            # Maybe still starting (a previous `up` was interrupted): give it its start time.
            try:
                self.wait_healthy(proc, min(self.start_timeout, 20.0))
            except StackError:
                say(f"  {self.name}: running but unhealthy ({problem}); restarting it")
            else:
                return f"reused after it finished starting (pid {proc.pid})"
            proc.stop(self.stop_grace)
        elif self.pidfile.exists():
            say(f"  {self.name}: found dead (stale pid file); starting it again")
            self.pidfile.unlink(missing_ok=True)
        self.prepare()
        proc = self.launch()
        self.wait_healthy(proc, self.start_timeout)
        return f"started (pid {proc.pid})"

    def down(self) -> bool:
        proc = self.running()
        if proc is not None:
            proc.stop(self.stop_grace)
        self.pidfile.unlink(missing_ok=True)
        return proc is not None

    def status(self) -> tuple[bool, str]:
        proc = self.running()
        if proc is None:
            return False, "not running"
        problem = self.health(proc)
        if problem is not None:
            return False, f"unhealthy: {problem} (pid {proc.pid})"
        return True, f"healthy (pid {proc.pid})"
