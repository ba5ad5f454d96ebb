"""The Kafka binding format: every accepted shape, every refusal naming its key, and properties
over arbitrary input (it never raises, and a secret never reaches a message or a repr)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventfleet.contract.kafka_binding import (
    IGNORED_KEYS,
    KEYS,
    SECRET_KEYS,
    BindingError,
    KafkaBinding,
    load_binding,
    parse_binding,
    parse_jaas,
)

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"
PASSWORD = "s3cr3t-Pa55word"
SCRAM = {
    "bootstrap.servers": "kafka-0:9094,kafka-1:9094",
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "username": "alice",
    "password": PASSWORD,
    "ca.crt": CERT,
}


def ok(entries: Mapping[str, str | bytes]) -> KafkaBinding:
    found = parse_binding(entries)
    assert isinstance(found, KafkaBinding), found
    return found


def refused(entries: Mapping[str, str | bytes]) -> BindingError:
    found = parse_binding(entries)
    assert isinstance(found, BindingError), found
    return found


def test_scram_over_tls_with_the_stacks_ca() -> None:
    binding = ok(SCRAM)
    assert binding.client_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": PASSWORD,
        "ssl.ca.pem": CERT,
    }
    assert binding.bootstrap_servers == "kafka-0:9094,kafka-1:9094"
    assert PASSWORD not in repr(binding)
    assert binding.describe() == "SASL_SSL SCRAM-SHA-512"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "scram-sha-512"])
def test_user_and_password_mechanisms(mechanism: str) -> None:
    config = ok({**SCRAM, "sasl.mechanism": mechanism}).client_config()
    assert config["sasl.mechanism"] == mechanism.upper()
    assert (config["sasl.username"], config["sasl.password"]) == ("alice", PASSWORD)


def test_plaintext_and_server_verified_tls_and_mutual_tls() -> None:
    assert ok({"security.protocol": "PLAINTEXT"}).client_config() == {
        "security.protocol": "PLAINTEXT"
    }
    assert ok({"security.protocol": "ssl"}).client_config() == {"security.protocol": "SSL"}
    mtls = ok({"security.protocol": "SSL", "ca.crt": CERT, "user.crt": CERT, "user.key": KEY})
    assert mtls.client_config() == {
        "security.protocol": "SSL",
        "ssl.ca.pem": CERT,
        "ssl.certificate.pem": CERT,
        "ssl.key.pem": KEY,
    }
    no_check = ok({"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "none"})
    assert no_check.client_config()["ssl.endpoint.identification.algorithm"] == "none"


def test_oauthbearer_through_librdkafkas_oidc() -> None:
    config = ok(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            "sasl.oauthbearer.client.id": "events",
            "sasl.oauthbearer.client.secret": PASSWORD,
            "sasl.oauthbearer.token.endpoint.url": "https://idp/token",
            "sasl.oauthbearer.scope": "kafka",
        }
    ).client_config()
    assert config["sasl.oauthbearer.method"] == "oidc"
    assert config["sasl.oauthbearer.client.secret"] == PASSWORD
    assert config["sasl.oauthbearer.scope"] == "kafka"


def test_a_strimzi_style_jaas_config_names_the_user() -> None:
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="alice" password="{PASSWORD}";'
    )
    entries = {k: v for k, v in SCRAM.items() if k not in ("username", "password")}
    config = ok({**entries, "sasl.jaas.config": jaas, "user.p12": b"\x00binary"}).client_config()
    assert (config["sasl.username"], config["sasl.password"]) == ("alice", PASSWORD)
    assert refused({**SCRAM, "sasl.jaas.config": jaas.replace("alice", "bob")}).key == "username"
    plain = jaas.replace("scram.ScramLoginModule", "plain.PlainLoginModule")
    assert refused({**entries, "sasl.jaas.config": plain}).key == "sasl.jaas.config"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"security.protocol": None}, "security.protocol"),
        ({"security.protocol": "TLS"}, "security.protocol"),
        ({"sasl.mechanism": None}, "sasl.mechanism"),
        ({"sasl.mechanism": "GSSAPI"}, "sasl.mechanism"),
        ({"password": None}, "password"),
        ({"username": None}, "username"),
        ({"username": "   "}, "username"),
        ({"password": b"\xff\xfe"}, "password"),
        ({"ca.crt": "not a certificate"}, "ca.crt"),
        ({"user.crt": CERT}, "user.key"),
        ({"user.key": KEY}, "user.crt"),
        ({"user.crt": CERT, "user.key": CERT}, "user.key"),
        ({"bootstrap.servers": "kafka"}, "bootstrap.servers"),
        ({"pasword": PASSWORD}, "pasword"),
        ({"sasl.oauthbearer.client.id": "x"}, "sasl.oauthbearer.client.id"),
        (
            {"ssl.endpoint.identification.algorithm": "maybe"},
            "ssl.endpoint.identification.algorithm",
        ),
    ],
)
def test_each_refusal_names_its_key(change: dict[str, str | bytes | None], key: str) -> None:
    entries = {**SCRAM, **change}
    error = refused({k: v for k, v in entries.items() if v is not None})
    assert error.key == key
    assert key in error.message
    assert PASSWORD not in error.message


@pytest.mark.parametrize(
    ("entries", "key"),
    [
        ({"security.protocol": "PLAINTEXT", "password": PASSWORD}, "password"),
        ({"security.protocol": "SSL", "sasl.mechanism": "PLAIN"}, "sasl.mechanism"),
        (
            {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN",
                "username": "a",
                "password": "b",
                "ca.crt": CERT,
            },
            "ca.crt",
        ),
    ],
)
def test_contradictions_are_refused(entries: dict[str, str | bytes], key: str) -> None:
    assert refused(entries).key == key


def test_a_trailing_newline_is_not_part_of_a_value() -> None:
    config = ok({**SCRAM, "username": "alice\n", "password": PASSWORD + "\n"}).client_config()
    assert (config["sasl.username"], config["sasl.password"]) == ("alice", PASSWORD)
    # Inner and leading whitespace of a password is kept: it may be part of it.
    assert ok({**SCRAM, "password": " x "}).client_config()["sasl.password"] == " x "


def test_load_from_a_mounted_secret_directory_and_from_json(tmp_path: Path) -> None:
    mounted = tmp_path / "secret"
    data = mounted / "..2025_01_01"
    data.mkdir(parents=True)
    for key, value in SCRAM.items():
        (data / key).write_text(value)
        (mounted / key).symlink_to(Path(data.name) / key)
    (mounted / "..data").symlink_to(data.name)
    assert ok(SCRAM) == load_binding(mounted)
    document = tmp_path / "kafka.json"
    document.write_text(json.dumps(SCRAM))
    assert ok(SCRAM) == load_binding(document)
    document.write_text("[1]")
    assert isinstance(load_binding(document), BindingError)
    missing = load_binding(tmp_path / "absent")
    assert isinstance(missing, BindingError)
    assert "absent" in missing.message


# ------------------------------------------------------------------------------- properties

VALUES = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),
    st.sampled_from(["SASL_SSL", "SSL", "PLAINTEXT", "SCRAM-SHA-512", "PLAIN", CERT, KEY, "a:1"]),
)
KEY_NAMES = st.one_of(st.sampled_from([*KEYS, *IGNORED_KEYS]), st.text(max_size=20))


@settings(max_examples=500)
@given(st.dictionaries(KEY_NAMES, VALUES, max_size=12))
def test_any_mapping_gives_a_binding_or_an_error(entries: dict[str, str | bytes]) -> None:
    found = parse_binding(entries)
    assert isinstance(found, KafkaBinding | BindingError)
    if isinstance(found, KafkaBinding):
        config = found.client_config()
        assert config["security.protocol"] in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
        assert all(key.startswith(("security.", "sasl.", "ssl.")) for key in config)


SECRET = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00\r\n"), min_size=12, max_size=30
).filter(lambda s: s.strip() == s and "=" not in s)


@settings(max_examples=300)
@given(
    st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8),
    st.sampled_from(sorted(SECRET_KEYS)),
    SECRET,
)
def test_a_secret_value_never_reaches_a_message_or_a_repr(
    entries: dict[str, str | bytes], key: str, secret: str
) -> None:
    found = parse_binding({**entries, key: secret})
    assert secret not in repr(found)
    if isinstance(found, BindingError):
        assert secret not in found.message


@given(st.text(min_size=1, max_size=20), SECRET)
def test_jaas_lines_round_trip(username: str, password: str) -> None:
    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    line = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f"username={quoted(username)} password={quoted(password)};"
    )
    assert parse_jaas(line) == (
        "org.apache.kafka.common.security.scram.ScramLoginModule",
        {"username": username, "password": password},
    )
