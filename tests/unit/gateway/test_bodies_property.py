"""No body earns a 5xx: Hypothesis sends random bytes, random JSON and deep nesting to both
ingestion endpoints of a gateway whose Kafka is a fake that accepts everything."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.gateway.fakes import call, make_gateway

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PATHS = st.sampled_from(["/api/v1/events", "/api/v1/events/batch"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=25,
)


@BOUNDED
@given(PATHS, st.binary(max_size=400))
def test_random_bytes_are_answered_below_500(path: str, raw: bytes) -> None:
    gateway, _ = make_gateway()
    assert call(gateway, "POST", path, raw).status < 500


@BOUNDED
@given(PATHS, json_values)
def test_random_json_is_answered_below_500(path: str, value: object) -> None:
    gateway, _ = make_gateway()
    assert call(gateway, "POST", path, json.dumps(value).encode()).status < 500


@BOUNDED
@given(PATHS, st.integers(min_value=1, max_value=3000), st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_answered_below_500(path: str, depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    raw = (opener * depth + "1" + closer * depth).encode()
    gateway, _ = make_gateway()
    assert call(gateway, "POST", path, raw).status < 500
