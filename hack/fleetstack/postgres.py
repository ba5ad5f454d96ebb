"""PostgreSQL: Debian's server binaries, one cluster under .stack/postgres."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from .common import HOST, STACK_DIR, StackError, display, say
from .component import Component
from .ports import port_from_env
from .processes import run_quiet


def find_postgres_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    if not candidates:
        raise StackError(
            "postgres",
            "PostgreSQL server binaries not found in /usr/lib/postgresql",
            fix="run `make system-deps` (installs Debian's postgresql package)",
        )
    return candidates[0].parent


class Postgres(Component):
    name = "postgres"
    run_as = "postgres"  # the server refuses to run as root
    start_timeout = 30.0
    user = "eventfleet"
    password = "eventfleet"  # loopback-only development database  # noqa: S105
    database = "eventfleet"

    def __init__(self) -> None:
        super().__init__()
        if self.home.is_symlink():  # relocated earlier, see relocate_if_unreachable
            self.rehome(self.home.resolve())

    def rehome(self, home: Path) -> None:
        self.home = home
        self.log = home / f"{self.name}.log"
        self.pidfile = home / "pid.json"

    def relocate_if_unreachable(self) -> None:
        """The server runs as user postgres, which may not be able to enter the checkout (a CI
        clone under a 0700 folder, say). Then its folder lives in /var/tmp, linked from .stack/."""
        if os.geteuid() != 0 or self.home.exists() or traversable_by_others(STACK_DIR):
            return
        digest = hashlib.sha256(str(STACK_DIR).encode()).hexdigest()[:10]
        target = Path("/var/tmp") / f"eventfleet-stack-{digest}" / self.name  # noqa: S108
        target.mkdir(parents=True, exist_ok=True)
        STACK_DIR.mkdir(parents=True, exist_ok=True)
        self.home.symlink_to(target)
        say(f"  postgres: {display(STACK_DIR)} is closed to user postgres; data kept in {target}")
        self.rehome(target)

    def ports(self) -> list[int]:
        return [port_from_env("EVENTFLEET_POSTGRES_PORT", 25432)]

    @property
    def data(self) -> Path:
        return self.home / "data"

    def dsn(self, database: str | None = None) -> str:
        return (
            f"postgresql://{self.user}:{self.password}@{self.address()}/{database or self.database}"
        )

    def env(self) -> dict[str, str]:
        return {"EVENTFLEET_POSTGRES_DSN": self.dsn()}

    def prepare(self) -> None:
        bindir = find_postgres_bin()
        self.relocate_if_unreachable()
        if os.geteuid() == 0 and not traversable_by_others(self.home.parent):
            raise StackError(
                self.name,
                f"user postgres cannot enter {self.home.parent}",
                fix=f"`hack/stack reset postgres`, or `chmod o+x` the folders above {self.home}",
            )
        if (self.data / "PG_VERSION").is_file():
            return
        if self.data.exists() and any(self.data.iterdir()):
            raise StackError(
                self.name,
                f"{display(self.data)} holds files but no PG_VERSION: "
                "the data directory is damaged",
                self.log,
                "`hack/stack reset postgres` deletes it and starts afresh",
            )
        say("  postgres: initialising a new cluster")
        self.home.mkdir(parents=True, exist_ok=True)
        pwfile = self.home / "pwfile"
        pwfile.write_text(self.password + "\n")
        (self.home / "run").mkdir(exist_ok=True)
        self.chown_home()
        run_quiet(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            self.log,
            self.name,
            "initdb",
            timeout=120,
            privileges=self.privileges(),
        )
        pwfile.unlink()
        # Single-user mode creates the application database before any network listener exists.
        run_quiet(
            [str(bindir / "postgres"), "--single", "-D", str(self.data), "postgres"],
            self.log,
            self.name,
            "creating the eventfleet database",
            stdin_bytes=f"CREATE DATABASE {self.database};\n".encode(),
            timeout=60,
            privileges=self.privileges(),
        )

    def command(self) -> list[str]:
        bindir = find_postgres_bin()
        return [
            str(bindir / "postgres"),
            "-D",
            str(self.data),
            "-c",
            f"listen_addresses={HOST}",
            "-p",
            str(self.ports()[0]),
            "-c",
            f"unix_socket_directories={self.home / 'run'}",
            # A disposable development database: durability traded for speed.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]

    def probe(self) -> str | None:
        psql = find_postgres_bin() / "psql"
        try:
            result = subprocess.run(
                [str(psql), self.dsn(), "-tAc", "select 1"],
                capture_output=True,
                timeout=5,
                check=False,
                env={**os.environ, "PGCONNECT_TIMEOUT": "3"},
            )
        except subprocess.TimeoutExpired:
            return "no answer within 5s"
        if result.returncode == 0 and result.stdout.strip() == b"1":
            return None
        return (result.stderr.decode().strip().splitlines() or ["no answer"])[-1]


def traversable_by_others(path: Path) -> bool:
    """Whether a user other than the owner may enter every folder from / down to path."""
    return all(folder.stat().st_mode & 0o001 for folder in [path, *path.parents] if folder.exists())
