"""Batch bodies read by orjson where it agrees with the standard library, and by the standard
library where it does not: the outcome is the same either way."""

from __future__ import annotations

import json

import pytest

from eventfleet.contract.events import MAX_DEPTH
from eventfleet.gateway import ingest
from eventfleet.gateway.ingest import BodyError


@pytest.mark.parametrize(
    "body",
    [
        b'[{"n":18446744073709551616}]',  # 2**64: orjson would read a float
        b'[{"n":-9223372036854775809}]',  # below -2**63, 19 digits
        b'[{"n":123456789012345678901234567890}]',
        b'[{"s":"\\ud800"}]',  # a lone surrogate: JSON allows it, orjson does not
        b'[{"x":1e400}]',
        b'[{"big":18446744073709551615,"neg":-9223372036854775808,"f":0.1}]',
        b'  [ {"s":"caf\xc3\xa9"} ]  ',
    ],
)
def test_batches_read_as_the_standard_library_reads_them(body: bytes) -> None:
    assert ingest._loads_batch(body, MAX_DEPTH) == json.loads(body.decode())


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[NaN]", "invalid_json"),
        (b"[Infinity]", "invalid_json"),
        (b"[1,", "invalid_json"),
        (b"[" * 3000, "too_deep"),
        (b"[" * (MAX_DEPTH + 2) + b"]" * (MAX_DEPTH + 2), "too_deep"),
        (b'[{"a":1,"a":2}]', "duplicate_key"),
        (b'[{"a":1,"b":{"c":1,"c":1}}]', "duplicate_key"),
        (b"\xef\xbb\xbf[1]", "invalid_json"),
        (b"\xff[1]", "not_utf8"),
    ],
)
def test_bad_batches_are_refused_with_the_strict_readers_reason(body: bytes, code: str) -> None:
    refused = ingest._loads_batch(body, MAX_DEPTH)
    assert isinstance(refused, BodyError)
    assert (refused.status, refused.code) == (400, code)
