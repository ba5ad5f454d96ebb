"""The operator's layering, checked (conventions), from the source's imports:

- its pure modules import no I/O client library (kopf and the Kubernetes client included), and
  only each other;
- it uses the consumer only through its migrations API, `eventfleet.consumer.migrate`.

The consumer's and the contract's rules live beside their own unit tests. Imports are read from
the syntax tree, so a module cannot dodge the rules by importing late (in a function); only a
dynamic import (importlib) would, and none is used.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
OPERATOR = REPO / "operator" / "eventfleet" / "operator"

OPERATOR_PURE = (
    "spec.py",
    "builders.py",
    "scaling.py",
    "topics.py",
    "conditions.py",
    "status.py",
    "config.py",
    "placement.py",
    "disruption.py",
)
IO_LIBRARIES = {
    "kopf",
    "kubernetes",
    "confluent_kafka",
    "psycopg2",
    "redis",
    "socket",
    "http",
    "urllib",
    "subprocess",
}
MIGRATIONS_API = "eventfleet.consumer.migrate"


def imported(path: Path, package: str) -> set[str]:
    """What `path` imports, each in full: `import a.b` gives a.b, `from a.b import c` gives a.b.c
    (c being a module or a name in a.b); relative imports resolved within `package`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def top_level(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def modules_of(package: str, names: set[str]) -> set[str]:
    """The modules of `package` among `names`, as file names (`package.spec.X` -> spec.py)."""
    prefix = f"{package}."
    return {n.removeprefix(prefix).split(".")[0] + ".py" for n in names if n.startswith(prefix)}


@pytest.mark.parametrize("name", OPERATOR_PURE)
def test_operator_pure_module_imports_no_io(name: str) -> None:
    names = imported(OPERATOR / name, "eventfleet.operator")
    io = top_level(names) & IO_LIBRARIES
    assert not io, f"{name} is pure but imports {sorted(io)}"
    # ... and only other pure modules of the operator (whose imports this test checks in turn)
    impure = modules_of("eventfleet.operator", names) - set(OPERATOR_PURE)
    assert not impure, f"{name} is pure but imports the operator's {sorted(impure)}"


@pytest.mark.parametrize("path", sorted(OPERATOR.glob("*.py")), ids=lambda p: p.name)
def test_operator_uses_the_consumer_only_through_its_migrations_api(path: Path) -> None:
    names = imported(path, "eventfleet.operator")
    beyond = {
        n
        for n in names
        if (n == "eventfleet.consumer" or n.startswith("eventfleet.consumer."))
        and not (n == MIGRATIONS_API or n.startswith(f"{MIGRATIONS_API}."))
    }
    assert not beyond, f"{path.name} uses the consumer beyond {MIGRATIONS_API}: {sorted(beyond)}"


def test_the_rules_see_what_they_check() -> None:
    """The import reader finds the imports the rules are about (a reader that found nothing
    would pass every rule)."""
    schema_step = imported(OPERATOR / "schema_step.py", "eventfleet.operator")
    assert MIGRATIONS_API in schema_step
    assert "kafka_admin.py" in modules_of("eventfleet.operator", schema_step)
    assert "kopf" in top_level(imported(OPERATOR / "handlers.py", "eventfleet.operator"))
    assert "confluent_kafka" in top_level(
        imported(OPERATOR / "kafka_admin.py", "eventfleet.operator")
    )
    assert set(OPERATOR_PURE) <= {p.name for p in OPERATOR.glob("*.py")}
