"""Which errors of librdkafka's error callback mean Kafka refused the client (its credentials
or its TLS session), as opposed to Kafka being away: the consumer turns them into not ready,
the operator into KafkaAuthFailed. Pure, and free of the Kafka client: errors come as librdkafka's
code name (`KafkaError.name()`) and text.
"""

from __future__ import annotations

from typing import Final

# The broker's TLS alert on a refused client certificate (none given, or not signed by a CA it
# trusts) arrives after the handshake under TLS 1.3: librdkafka reports a receive failure
# (_TRANSPORT) whose text names the alert, not an _SSL error.
_TLS_ALERT: Final = "ssl/tls alert"


def refusal_reason(name: str, text: str) -> str | None:
    """What to say of an error Kafka refused the client with; None: not a refusal."""
    if name == "_AUTHENTICATION":
        return f"Kafka refused the credentials: {text}"
    if name == "_SSL" or (name == "_TRANSPORT" and _TLS_ALERT in text.lower()):
        return f"the TLS handshake with Kafka failed: {text}"
    return None
