"""The OpenAPI document, generated from the shared event model and the gateway's answer models.

OpenAPI 3.0.3 (what the bundled Swagger UI renders): pydantic's JSON Schema is adapted where
3.0 differs (`nullable` instead of a `null` type, no `const`).
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from eventfleet.contract.events import DATA_MODELS, RejectReason, event_json_schema
from eventfleet.gateway.settings import Settings

REF: Final = "#/components/schemas/{model}"


class FieldProblem(BaseModel):
    model_config = ConfigDict(title="FieldError")
    field: str = Field(description="dotted path of the field, e.g. data.score")
    message: str


class Problem(BaseModel):
    """Every error answer: a stable code, a sentence, and the invalid fields when known."""

    error: str = Field(
        description="stable code: one of the event reasons ("
        + ", ".join(r.value for r in RejectReason)
        + ") or not_an_array, empty_batch, too_many_events, unsupported_media_type, "
        "unauthorized, rate_limited, unavailable, not_found, method_not_allowed"
    )
    message: str
    errors: list[FieldProblem] | None = None


class RejectedItem(Problem):
    """One refused event of a batch."""

    index: int = Field(description="position of the event in the batch, from 0")


class Accepted(BaseModel):
    """202: the events are in Kafka (or queued, in fire-and-forget mode)."""

    accepted: int
    event_ids: list[str] = Field(description="ids of the accepted events, in request order")
    rejected: list[RejectedItem] | None = Field(
        default=None, description="batch only: the invalid events, not produced"
    )


class BatchRejected(Problem):
    """400 for a batch in which no event was accepted."""

    accepted: int = 0
    event_ids: list[str] = Field(default_factory=list)
    rejected: list[RejectedItem]


def _to_openapi30(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _to_openapi30(value) for key, value in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del node["anyOf"]
        if len(rest) == 1:
            node.update(rest[0] if "$ref" not in rest[0] else {"allOf": rest})
        else:
            node["anyOf"] = rest
        node["nullable"] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    return node


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=schema)}}},
    }


def _errors(*statuses: tuple[str, str]) -> dict[str, Any]:
    return {status: _json(text, "Problem") for status, text in statuses}


def build_openapi(settings: Settings) -> dict[str, Any]:
    models: list[type[BaseModel]] = [Problem, RejectedItem, Accepted, BatchRejected]
    models.extend(DATA_MODELS.values())
    _, definitions = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    event = event_json_schema(ref_template=REF)
    event.pop("description", None)
    event["title"] = "Event"
    event["description"] = "A player event. `data` depends on `event_type`: " + ", ".join(
        f"{name} -> {model.__name__}" for name, model in DATA_MODELS.items()
    )
    event["properties"]["timestamp"]["format"] = "date-time"
    event["example"] = {
        "event_type": "match_completed",
        "player_id": "player-42",
        "game_id": "game-7",
        "timestamp": "2026-11-27T09:30:00Z",
        "data": {"score": 1200, "won": True, "kills": 5},
    }
    schemas["Event"] = event
    schemas["EventBatch"] = {
        "type": "array",
        "items": {"$ref": REF.format(model="Event")},
        "minItems": 1,
        "maxItems": settings.max_batch_events,
    }
    common = _errors(
        ("401", "an API key is required and was missing or unknown"),
        ("413", "the body is over the size limit"),
        ("415", "the content type is not application/json"),
        ("429", "rate limited: retry after the Retry-After header's seconds"),
        ("503", "Kafka is unreachable or the queue is full: retry after Retry-After"),
    )
    security: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}]
    paths = {
        "/api/v1/events": {
            "post": {
                "summary": "Ingest one event",
                "description": "Answers 202 once Kafka acknowledged the event (acks=all). "
                "The event_id is set (UUIDv7) when absent. Keyed by player_id.",
                "operationId": "postEvent",
                "security": security,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model="Event")}}
                    },
                },
                "responses": {
                    "202": _json("accepted", "Accepted"),
                    "400": _json("invalid: every invalid field is named", "Problem"),
                    **common,
                },
            }
        },
        "/api/v1/events/batch": {
            "post": {
                "summary": "Ingest a batch of events",
                "description": "Valid events are produced and invalid ones listed by index "
                "(202 if at least one was accepted, 400 if none). With atomic=true one "
                "invalid event rejects the whole batch and nothing is produced. At most "
                f"{settings.max_batch_events} events and {settings.max_batch_bytes} bytes.",
                "operationId": "postEventBatch",
                "security": security,
                "parameters": [
                    {
                        "name": "atomic",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "boolean", "default": False},
                        "description": "all events or none",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model="EventBatch")}}
                    },
                },
                "responses": {
                    "202": _json("accepted (some events may be listed as rejected)", "Accepted"),
                    "400": _json("no event accepted, or the body is not a batch", "BatchRejected"),
                    **common,
                },
            }
        },
        "/healthz": {"get": _probe("the process is alive")},
        "/readyz": {"get": _probe("Kafka is reachable and the topic exists (else 503)")},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "exposition text"}},
            }
        },
    }
    document = {
        "openapi": "3.0.3",
        "info": {
            "title": "eventfleet gateway",
            "version": "1",
            "description": "HTTP ingestion of player events into Kafka.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
    result: dict[str, Any] = _to_openapi30(document)
    return result


def _probe(text: str) -> dict[str, Any]:
    return {
        "summary": text,
        "responses": {
            "200": {"description": "ok"},
            "503": {"description": "not ready"},
        },
    }
