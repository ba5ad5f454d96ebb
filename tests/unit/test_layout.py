"""The package layout must never shadow the standard library's `operator` module."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _file_of(module: str, *, cwd: Path, flags: tuple[str, ...] = ()) -> Path:
    code = f"import {module}; print({module}.__file__)"
    out = subprocess.run(
        [sys.executable, *flags, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return Path(out.stdout.strip())


def test_import_operator_from_repo_root_is_the_stdlib() -> None:
    # `python -c` puts the working directory first on sys.path: the worst case for shadowing.
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    found = _file_of("operator", cwd=REPO).resolve()
    assert found.parent == stdlib, found


def test_component_folders_are_not_packages() -> None:
    for folder in ("contract", "operator", "consumer", "gateway", "cli"):
        assert not (REPO / folder / "__init__.py").exists()
        assert not (REPO / folder / "eventfleet" / "__init__.py").exists()


def test_import_names_resolve_to_component_folders() -> None:
    for component in ("contract", "operator", "consumer", "gateway", "cli"):
        found = _file_of(f"eventfleet.{component}", cwd=REPO)
        assert found == REPO / component / "eventfleet" / component / "__init__.py"
