"""The README's EventConsumer reference names every field of the CRD's spec (a field added to
the CRD and not to the reference is unreachable for whoever reads only the README)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def leaf_fields(node: dict[str, Any], prefix: str = "") -> list[str]:
    found: list[str] = []
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        nested = child.get("type") == "object" and "properties" in child
        found += leaf_fields(child, path) if nested else [path]
    return found


def reference_rows() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## EventConsumer reference", 1)[1].split("\n## ", 1)[0]
    return [line.split(" | ", 1)[0] for line in section.splitlines() if line.startswith("| `")]


def named(field: str, rows: list[str]) -> bool:
    """`a.b.c` is named as `a.b.c`, or as a later name of a row `a.b.x` / `c` (a pair or a
    triple sharing a parent), or by its parent for a `{name, key}` reference."""
    parent, _, leaf = field.rpartition(".")
    for row in rows:
        names = re.findall(r"`([^`]+)`", row)
        if field in names or (leaf in names[1:] and names[0].rpartition(".")[0] == parent):
            return True
        if leaf in ("name", "key") and parent in names:
            return True
    return False


def test_every_spec_field_is_in_the_readme_reference() -> None:
    crd = yaml.safe_load((REPO / "crds" / "eventconsumers.eventfleet.dev.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    fields = leaf_fields(spec)
    assert len(fields) > 50  # the walk found the spec
    rows = reference_rows()
    assert [f for f in fields if not named(f, rows)] == []
