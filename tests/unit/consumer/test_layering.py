"""Pure modules import no I/O client library (conventions: layering you can check)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "consumer" / "eventfleet" / "consumer"
PURE = ("aggregate.py", "batch.py", "settings.py")
IO_LIBRARIES = {"psycopg2", "redis", "confluent_kafka", "socket", "http", "urllib", "subprocess"}


def imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
            if node.module.startswith("eventfleet.consumer."):
                found.add(node.module)
    return found


@pytest.mark.parametrize("name", PURE)
def test_pure_module_imports_no_io(name: str) -> None:
    names = imported(PACKAGE / name)
    assert not names & IO_LIBRARIES
    # ... and only other pure modules of the package
    internal = {
        n.removeprefix("eventfleet.consumer.") + ".py"
        for n in names
        if n.startswith("eventfleet.consumer.")
    }
    assert internal <= set(PURE)
