"""The contract is shared by every component, so it imports none of them, and no I/O library:
the gateway, the consumers and the operator depend on it, never the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "contract" / "eventfleet" / "contract"
FORBIDDEN = {
    "eventfleet.consumer",
    "eventfleet.gateway",
    "eventfleet.operator",
    "eventfleet.cli",
    "psycopg2",
    "redis",
    "confluent_kafka",
    "kopf",
    "kubernetes",
    "socket",
    "http",
    "urllib",
    "subprocess",
}


def imported(source: str) -> set[str]:
    """Every module `source` imports, with each of its parents (a.b.c gives a, a.b and a.b.c)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_contract_imports_no_component_and_no_io(path: Path) -> None:
    assert not imported(path.read_text()) & FORBIDDEN


def test_the_rule_catches_a_forbidden_import() -> None:
    assert imported("from eventfleet.consumer.batch import Good") & FORBIDDEN
    assert imported("import psycopg2.extras") & FORBIDDEN
    assert not imported("from eventfleet.contract import names") & FORBIDDEN
