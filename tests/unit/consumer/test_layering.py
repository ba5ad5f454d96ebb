"""Layering you can check (conventions): pure modules import no I/O client library, each part of
the loop imports the client library of its own system only and the loop itself none, and a lower
layer imports nothing of the layers above it (the mirror is below the modes, the modes below the
loop)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "consumer" / "eventfleet" / "consumer"
SOURCE_ROOT = PACKAGE.parents[1]  # where the import name `eventfleet.consumer` starts
PURE = (
    "aggregate.py",
    "batch.py",
    "kafka_commits.py",
    "settings.py",
    "mirror/ops.py",
    "mirror/resp.py",
    "mirror/floors.py",
    "dlq/fixup.py",
    "dlq/selection.py",
)
IO_LIBRARIES = {"psycopg2", "redis", "confluent_kafka", "socket", "http", "urllib", "subprocess"}
CLIENTS = {"psycopg2", "redis", "confluent_kafka"}
# (a module of the loop, the client libraries it must not import): the loop (runtime, and what it
# knows of its parts) talks to Kafka, PostgreSQL and Redis only through its parts.
PARTS = (
    ("runtime.py", CLIENTS),
    ("parts.py", CLIENTS),
    ("kafka_source.py", CLIENTS - {"confluent_kafka"}),
    ("dlq_producer.py", CLIENTS - {"confluent_kafka"}),
    ("store.py", CLIENTS - {"psycopg2"}),
    ("mirror_link.py", {"confluent_kafka"}),  # Redis, and PostgreSQL for a rebuild's reads
)
LOOP = ("runtime", "parts", "kafka_source", "dlq_producer", "store", "mirror_link")
# (a layer: a subpackage, every module of it; what it must not import, nor anything under it)
LAYERS = (
    ("mirror", "eventfleet.consumer.modes"),
    *(("mirror", f"eventfleet.consumer.{name}") for name in LOOP),
    *(("modes", f"eventfleet.consumer.{name}") for name in LOOP),
    # The dead-letter command reads the table and judges by the contract, never through the loop.
    *(("dlq", f"eventfleet.consumer.{name}") for name in (*LOOP, "modes")),
)


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


def eventfleet_imports(source: str, package: str) -> set[str]:
    """The full names of the eventfleet modules (and of the names imported from them) that
    `source`, a module of `package`, imports: at any depth (in a function, under
    TYPE_CHECKING) and in any spelling (`import a.b`, `from a import b`, `from ..a import b`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: level 1 is `package` itself, 2 its parent, ...
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{module}" if module else base
            found.add(module)
            # `from a import b` may import the module a.b
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] == "eventfleet"}


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(SOURCE_ROOT).parts[:-1])


def under(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


@pytest.mark.parametrize("name", PURE)
def test_pure_module_imports_no_io(name: str) -> None:
    names = imported(PACKAGE / name)
    assert not names & IO_LIBRARIES
    # ... and only other pure modules of the package
    internal = {
        n.removeprefix("eventfleet.consumer.").replace(".", "/") + ".py"
        for n in names
        if n.startswith("eventfleet.consumer.")
    }
    assert internal <= set(PURE)


@pytest.mark.parametrize(("name", "clients"), PARTS, ids=[name for name, _ in PARTS])
def test_a_part_of_the_loop_imports_only_its_own_client_library(
    name: str, clients: set[str]
) -> None:
    assert not imported(PACKAGE / name) & clients


@pytest.mark.parametrize(("layer", "above"), LAYERS)
def test_a_layer_imports_nothing_of_a_layer_above(layer: str, above: str) -> None:
    paths = sorted((PACKAGE / layer).glob("*.py"))
    assert paths, f"no layer {layer}: a rule about nothing would always pass"
    offending = sorted(
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in paths
        for name in eventfleet_imports(path.read_text(), package_of(path))
        if under(name, above)
    )
    assert offending == []


@pytest.mark.parametrize(
    "source",
    [
        "from eventfleet.consumer.runtime import Consumer",
        "import eventfleet.consumer.runtime",
        "import eventfleet.consumer.runtime as rt",
        "from eventfleet.consumer import runtime",
        "from ..runtime import Consumer",
        "from .. import runtime",
        "def later() -> None:\n    from eventfleet.consumer.runtime import Consumer",
        "if TYPE_CHECKING:\n    import eventfleet.consumer.runtime",
    ],
)
def test_every_spelling_of_an_import_is_seen(source: str) -> None:
    found = eventfleet_imports(source, "eventfleet.consumer.mirror")
    assert any(under(name, "eventfleet.consumer.runtime") for name in found)


def test_a_module_next_to_a_layer_is_not_under_it() -> None:
    assert not under("eventfleet.consumer.modes_extra", "eventfleet.consumer.modes")
    assert under("eventfleet.consumer.modes.base.Mode", "eventfleet.consumer.modes")
