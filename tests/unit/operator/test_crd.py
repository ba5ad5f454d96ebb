"""The CRD (crds/), the operator's pydantic model and the samples (manifests/samples) in step."""

from __future__ import annotations

import enum
import typing
from pathlib import Path
from typing import Any

import annotated_types
import pydantic
import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from eventfleet.operator.spec import EventConsumerSpec, invalid_spec_message, parse_spec

REPO = Path(__file__).resolve().parents[3]
CRD_PATH = REPO / "crds" / "eventconsumers.eventfleet.dev.yaml"
SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))


def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return loaded


def spec_schema() -> dict[str, Any]:
    version = crd()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `Model`, `Model | None` or `Annotated[Model | None, ...]`."""
    candidates = typing.get_args(annotation) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _enum_values(annotation: Any) -> list[str] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return [member.value for member in candidate]
        if typing.get_origin(candidate) is typing.Literal:
            return list(typing.get_args(candidate))
        if typing.get_origin(candidate) is tuple:  # tuple[Literal[...], ...]
            return _enum_values(typing.get_args(candidate)[0])
    return None


def _bounds(field: FieldInfo) -> tuple[Any, Any]:
    low = high = None
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            low = meta.ge
        if isinstance(meta, annotated_types.Le):
            high = meta.le
    return low, high


def _default(field: FieldInfo) -> Any:
    if field.is_required():
        return None
    if field.default_factory is not None:
        return "factory"
    value = field.default
    if isinstance(value, enum.Enum):
        return value.value
    if value == ():
        return "factory"  # an empty list: absence in the CRD means the same
    if isinstance(value, tuple):
        return list(value)
    return value


def walk(model: type[BaseModel], schema: dict[str, Any], path: str) -> list[str]:
    """Every disagreement between the model and the schema, as readable lines."""
    problems: list[str] = []
    properties: dict[str, Any] = schema.get("properties", {})
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    if set(fields) != set(properties):
        problems.append(f"{path}: model has {sorted(fields)}, CRD has {sorted(properties)}")
    required_model = sorted(a for a, f in fields.items() if f.is_required())
    if required_model != sorted(schema.get("required", [])):
        problems.append(f"{path}: required {required_model} vs {schema.get('required', [])}")
    for alias, field in fields.items():
        prop = properties.get(alias)
        if prop is None:
            continue
        where = f"{path}.{alias}"
        nested = _model_of(field.annotation)
        if nested is not None:
            # A list of objects (tuple[Model, ...]): the model describes each item.
            items = prop["items"] if prop.get("type") == "array" else prop
            problems += walk(nested, items, where)
            continue
        default = _default(field)
        if default not in (None, "factory") and prop.get("default") != default:
            problems.append(f"{where}: default {default!r} vs CRD {prop.get('default')!r}")
        if default is None and "default" in prop:
            problems.append(f"{where}: CRD default {prop['default']!r}, model has none")
        values = _enum_values(field.annotation)
        crd_enum = prop.get("enum") or prop.get("items", {}).get("enum")
        if values is not None and values != crd_enum:
            problems.append(f"{where}: enum {values} vs CRD {crd_enum}")
        low, high = _bounds(field)
        if (low, high) != (prop.get("minimum"), prop.get("maximum")):
            problems.append(
                f"{where}: range {low}..{high} vs CRD {prop.get('minimum')}..{prop.get('maximum')}"
            )
    return problems


def test_names_are_the_fixed_api() -> None:
    names = crd()["spec"]["names"]
    assert crd()["spec"]["group"] == "eventfleet.dev"
    assert names["kind"] == "EventConsumer"
    assert names["plural"] == "eventconsumers"
    assert names["shortNames"] == ["ec"]
    assert "eventfleet" in names["categories"]
    assert crd()["spec"]["scope"] == "Namespaced"


def test_printer_columns_and_subresources() -> None:
    version = crd()["spec"]["versions"][0]
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Mode", "Topic", "Ready", "Desired", "Lag", "Phase", "Age"]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas.count"


def test_crd_schema_and_pydantic_model_agree() -> None:
    assert walk(EventConsumerSpec, spec_schema(), "spec") == []


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_samples_are_valid_specs(sample: Path) -> None:
    document = yaml.safe_load(sample.read_text())
    if document.get("kind") == "Kustomization":
        assert all((sample.parent / r).exists() for r in document["resources"])
        return
    assert document["apiVersion"] == "eventfleet.dev/v1alpha1"
    spec = EventConsumerSpec.model_validate(document["spec"])
    assert spec.mode == document["metadata"]["name"]


def test_three_samples_of_the_original_design() -> None:
    specs = {
        s.stem: EventConsumerSpec.model_validate(yaml.safe_load(s.read_text())["spec"])
        for s in SAMPLES
        if s.stem != "kustomization"
    }
    assert {name: spec.replicas.min for name, spec in specs.items()} == {
        "logger": 2,
        "stats": 2,
        "leaderboard": 1,
    }
    assert {spec.kafka.topic for spec in specs.values()} == {"player.events.raw"}
    topic = specs["logger"].topic
    assert topic is not None
    assert topic.partitions == 3
    assert topic.config["retention.ms"] == str(7 * 24 * 3600 * 1000)


def test_fields_of_a_newer_crd_do_not_fail_an_older_operator() -> None:
    document = yaml.safe_load((REPO / "manifests" / "samples" / "stats.yaml").read_text())
    document["spec"]["redis"]["someFutureField"] = 3
    document["spec"]["futureSection"] = {"enabled": True}
    spec = EventConsumerSpec.model_validate(document["spec"])
    assert spec.mode == "stats"


def test_an_invalid_spec_is_named_field_by_field() -> None:
    document = yaml.safe_load((REPO / "manifests" / "samples" / "stats.yaml").read_text())
    document["spec"]["replicas"] = {"min": "many"}
    document["spec"]["kafka"]["topic"] = ""
    with pytest.raises(pydantic.ValidationError) as raised:
        parse_spec(document["spec"])
    message = invalid_spec_message(raised.value)
    assert "spec.replicas.min: " in message
    assert "spec.kafka.topic: " in message
    assert "errors.pydantic.dev" not in message
