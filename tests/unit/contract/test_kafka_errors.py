"""Which errors of librdkafka's error callback are Kafka refusing the client."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eventfleet.contract.kafka_errors import refusal_reason

AUTH = "SASL authentication error: Authentication failed due to invalid credentials"
ALERT = (
    "ssl://127.0.0.1:29595/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls "
    "alert bad certificate: SSL alert number 42 (after 0ms in state APIVERSION_QUERY)"
)


def test_refused_credentials_and_tls_sessions_are_refusals() -> None:
    assert refusal_reason("_AUTHENTICATION", AUTH) == f"Kafka refused the credentials: {AUTH}"
    assert refusal_reason("_SSL", "certificate verify failed") == (
        "the TLS handshake with Kafka failed: certificate verify failed"
    )
    # A client certificate refused under TLS 1.3: a receive failure naming the broker's alert.
    assert refusal_reason("_TRANSPORT", ALERT) == f"the TLS handshake with Kafka failed: {ALERT}"


def test_kafka_being_away_is_not_a_refusal() -> None:
    assert refusal_reason("_ALL_BROKERS_DOWN", "1/1 brokers are down") is None
    assert refusal_reason("_TRANSPORT", "Connection refused (after 0ms in state CONNECT)") is None
    assert refusal_reason("_TIMED_OUT", "ssl/tls alert in a timeout?") is None


@given(st.text(max_size=40), st.text(max_size=200))
def test_any_error_gets_an_answer_that_quotes_its_text(name: str, text: str) -> None:
    found = refusal_reason(name, text)
    assert found is None or found.endswith(text)
    assert (found is not None) <= (name in ("_AUTHENTICATION", "_SSL", "_TRANSPORT"))
