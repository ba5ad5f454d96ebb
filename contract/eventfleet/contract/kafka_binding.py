"""Kafka credentials by reference: the binding format every component reads, and its parser.

One Secret (or, for the gateway and the local stack, a directory of one file per key, or a JSON
object), in the model of Strimzi's Access Operator binding Secret:

    bootstrap.servers   host:port[,host:port]      optional; must agree with the spec's
    security.protocol   PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL       required
    sasl.mechanism      PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 | OAUTHBEARER   SASL only
    username, password  PLAIN and SCRAM (or sasl.jaas.config, which names both)
    sasl.oauthbearer.client.id / .client.secret / .token.endpoint.url / .scope   OAUTHBEARER
    ca.crt              PEM: the CA that signed the brokers' certificates (TLS only; else the
                        system's CAs)
    user.crt, user.key  PEM: a client certificate for mutual TLS (TLS only, both or neither)
    ssl.endpoint.identification.algorithm   https (default) | none

`parse_binding` never raises: any mapping gives a KafkaBinding or a BindingError naming the key.
Neither ever carries a secret value into its message or repr: the settings librdkafka gets are
only handed out by `client_config()`. Pure: `load_binding` is the one function that reads files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
OAUTH_KEYS: Final = (
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.token.endpoint.url",
)
KEYS: Final = (
    "bootstrap.servers",
    "security.protocol",
    "sasl.mechanism",
    "username",
    "password",
    "sasl.jaas.config",
    *OAUTH_KEYS,
    "sasl.oauthbearer.scope",
    "ca.crt",
    "user.crt",
    "user.key",
    "ssl.endpoint.identification.algorithm",
)
# Keys a Strimzi KafkaUser Secret carries beside those (PKCS #12 copies): accepted, not used.
IGNORED_KEYS: Final = frozenset({"user.p12", "user.password", "ca.p12", "ca.password"})
# Values never shown, logged or compared in a message.
SECRET_KEYS: Final = frozenset(
    {"password", "sasl.jaas.config", "user.key", "sasl.oauthbearer.client.secret"}
)
MAX_VALUE_BYTES: Final = 1024 * 1024
_BOOTSTRAP: Final = re.compile(
    r"^[A-Za-z0-9._\-\[\]:]+:[0-9]{1,5}(,[A-Za-z0-9._\-\[\]:]+:[0-9]{1,5})*$"
)
_JAAS: Final = re.compile(
    r"^\s*(?P<module>[A-Za-z0-9_.$]+)\s+(?:required|requisite|sufficient|optional)"
    r"(?P<options>(?:\s+[A-Za-z0-9_.]+\s*=\s*(?:\"(?:[^\"\\]|\\.)*\"|[^\s;\"]+))*)\s*;?\s*$",
    re.DOTALL,
)
_JAAS_OPTION: Final = re.compile(r"([A-Za-z0-9_.]+)\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|([^\s;\"]+))")
_JAAS_MODULES: Final = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": ("PLAIN",),
    "org.apache.kafka.common.security.scram.ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512"),
}


@dataclass(frozen=True)
class BindingError:
    """Why a binding cannot be used; `key` is the missing or malformed key, if one is."""

    message: str
    key: str | None = None


@dataclass(frozen=True)
class KafkaBinding:
    protocol: str
    mechanism: str | None
    bootstrap_servers: str | None
    # librdkafka settings, secrets included: out of repr, handed out by client_config() only.
    _settings: tuple[tuple[str, str], ...] = field(repr=False)

    def client_config(self) -> dict[str, str]:
        """The librdkafka settings (security.protocol, sasl.*, ssl.*) for any client."""
        return dict(self._settings)

    def describe(self) -> str:
        """What a log line may say about it."""
        return f"{self.protocol}" + (f" {self.mechanism}" if self.mechanism else "")


NO_AUTH: Final = KafkaBinding("PLAINTEXT", None, None, ())


def _text(entries: Mapping[str, bytes | str], key: str) -> str | BindingError | None:
    raw = entries.get(key)
    if raw is None:
        return None
    if len(raw) > MAX_VALUE_BYTES:
        return BindingError(f"key {key} is larger than {MAX_VALUE_BYTES} bytes", key)
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return BindingError(f"key {key} is not UTF-8 text", key)
    if "\x00" in raw:
        return BindingError(f"key {key} holds a NUL character", key)
    # One trailing newline (`echo secret > file`, a YAML block) is not part of the value.
    value = raw.removesuffix("\n").removesuffix("\r")
    if key not in SECRET_KEYS:
        value = value.strip()
    return value or BindingError(f"key {key} is empty", key)


def parse_jaas(text: str) -> tuple[str, dict[str, str]] | None:
    """A one-module JAAS line as Java clients take it: (login module, options), or None."""
    found = _JAAS.match(text)
    if found is None:
        return None
    options: dict[str, str] = {}
    for match in _JAAS_OPTION.finditer(found.group("options")):
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        if match.group(1) in options:
            return None  # a repeated option is ambiguous
        options[match.group(1)] = value
    return found.group("module"), options


_PEM_CERTIFICATE: Final = re.compile(
    r"-----BEGIN CERTIFICATE-----.+-----END CERTIFICATE-----", re.S
)
_PEM_KEY: Final = re.compile(
    r"-----BEGIN (RSA |EC )?PRIVATE KEY-----.+-----END \1?PRIVATE KEY-----", re.S
)


def _pem(value: str, key: str, *, private: bool = False) -> BindingError | None:
    if private:
        if "ENCRYPTED PRIVATE KEY" in value:
            return BindingError(f"key {key} is an encrypted key: give it unencrypted", key)
        if not _PEM_KEY.search(value):
            return BindingError(f"key {key} is not a PEM private key", key)
    elif not _PEM_CERTIFICATE.search(value):
        return BindingError(f"key {key} is not a PEM certificate", key)
    return None


def parse_binding(entries: Mapping[str, bytes | str]) -> KafkaBinding | BindingError:  # noqa: PLR0911, PLR0912 - one rule per key, in order
    """The librdkafka settings of a binding, or the first reason it cannot be used."""
    unknown = sorted(k for k in entries if k not in KEYS and k not in IGNORED_KEYS)
    if unknown:
        return BindingError(
            f"unknown key {unknown[0][:100]!r} (known: {', '.join(KEYS)})", unknown[0][:100]
        )
    values: dict[str, str] = {}
    for key in KEYS:
        value = _text(entries, key)
        if isinstance(value, BindingError):
            return value
        if value is not None:
            values[key] = value
    protocol = values.get("security.protocol", "").upper()
    if not protocol:
        return BindingError(
            f"missing key security.protocol (one of {', '.join(PROTOCOLS)})", "security.protocol"
        )
    if protocol not in PROTOCOLS:
        return BindingError(
            f"security.protocol must be one of {', '.join(PROTOCOLS)}", "security.protocol"
        )
    settings: dict[str, str] = {"security.protocol": protocol}
    bootstrap = values.get("bootstrap.servers")
    if bootstrap is not None and not _BOOTSTRAP.match(bootstrap):
        return BindingError("bootstrap.servers is not host:port[,host:port]", "bootstrap.servers")
    sasl = protocol.startswith("SASL_")
    tls = protocol.endswith("SSL")
    mechanism = values.get("sasl.mechanism", "").upper() or None
    if not sasl:
        given = [k for k in values if k.startswith("sasl.") or k in ("username", "password")]
        if given:
            return BindingError(f"key {given[0]} needs a SASL security.protocol", given[0])
    else:
        if mechanism is None:
            return BindingError(
                f"missing key sasl.mechanism (one of {', '.join(MECHANISMS)})", "sasl.mechanism"
            )
        if mechanism not in MECHANISMS:
            return BindingError(
                f"sasl.mechanism must be one of {', '.join(MECHANISMS)}", "sasl.mechanism"
            )
        settings["sasl.mechanism"] = mechanism
        found = _sasl_settings(mechanism, values)
        if isinstance(found, BindingError):
            return found
        settings.update(found)
    tls_keys = [
        k
        for k in ("ca.crt", "user.crt", "user.key", "ssl.endpoint.identification.algorithm")
        if k in values
    ]
    if tls_keys and not tls:
        return BindingError(f"key {tls_keys[0]} needs an SSL security.protocol", tls_keys[0])
    if "ca.crt" in values:
        if problem := _pem(values["ca.crt"], "ca.crt"):
            return problem
        settings["ssl.ca.pem"] = values["ca.crt"]
    if ("user.crt" in values) != ("user.key" in values):
        missing = "user.key" if "user.crt" in values else "user.crt"
        return BindingError(f"missing key {missing}: user.crt and user.key go together", missing)
    if "user.crt" in values:
        if problem := _pem(values["user.crt"], "user.crt") or _pem(
            values["user.key"], "user.key", private=True
        ):
            return problem
        settings["ssl.certificate.pem"] = values["user.crt"]
        settings["ssl.key.pem"] = values["user.key"]
    algorithm = values.get("ssl.endpoint.identification.algorithm")
    if algorithm is not None:
        if algorithm.lower() not in ("https", "none"):
            key = "ssl.endpoint.identification.algorithm"
            return BindingError(f"{key} must be https or none", key)
        settings["ssl.endpoint.identification.algorithm"] = algorithm.lower()
    return KafkaBinding(protocol, mechanism, bootstrap, tuple(sorted(settings.items())))


def _sasl_settings(  # noqa: PLR0911, PLR0912 - one rule per key, in order
    mechanism: str, values: Mapping[str, str]
) -> dict[str, str] | BindingError:
    if mechanism == "OAUTHBEARER":
        for key in OAUTH_KEYS:
            if key not in values:
                return BindingError(f"missing key {key} (needed by OAUTHBEARER)", key)
        found = {
            "sasl.oauthbearer.method": "oidc",
            **{key: values[key] for key in OAUTH_KEYS},
        }
        if "sasl.oauthbearer.scope" in values:
            found["sasl.oauthbearer.scope"] = values["sasl.oauthbearer.scope"]
        return found
    oauth = [k for k in values if k.startswith("sasl.oauthbearer.")]
    if oauth:
        return BindingError(f"key {oauth[0]} needs sasl.mechanism OAUTHBEARER", oauth[0])
    username, password = values.get("username"), values.get("password")
    jaas_text = values.get("sasl.jaas.config")
    if jaas_text is not None:
        jaas = parse_jaas(jaas_text)
        if jaas is None:
            return BindingError(
                'sasl.jaas.config is not one `<LoginModule> required username="…" '
                'password="…";` line',
                "sasl.jaas.config",
            )
        module, options = jaas
        if mechanism not in _JAAS_MODULES.get(module, ()):
            return BindingError(
                f"sasl.jaas.config's login module does not do sasl.mechanism {mechanism}",
                "sasl.jaas.config",
            )
        for key, given in (("username", username), ("password", password)):
            if key not in options:
                return BindingError(f"sasl.jaas.config names no {key}", "sasl.jaas.config")
            if given is not None and given != options[key]:
                return BindingError(
                    f"key {key} and sasl.jaas.config disagree: give one of them", key
                )
        username, password = options["username"], options["password"]
    if username is None:
        return BindingError(f"missing key username (needed by {mechanism})", "username")
    if password is None:
        return BindingError(f"missing key password (needed by {mechanism})", "password")
    return {"sasl.username": username, "sasl.password": password}


def load_binding(path: Path) -> KafkaBinding | BindingError:
    """A binding from a directory of one file per key (a mounted Secret: its `..data` and other
    dot entries are Kubernetes' own) or from a JSON object of strings."""
    try:
        if path.is_dir():
            entries: dict[str, bytes | str] = {
                child.name: child.read_bytes()
                for child in sorted(path.iterdir())
                if not child.name.startswith(".") and child.is_file()
            }
        else:
            loaded = json.loads(path.read_bytes())
            if not isinstance(loaded, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
            ):
                return BindingError(f"{path}: not a JSON object of strings")
            entries = dict(loaded)
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not JSON"
        return BindingError(f"cannot read the Kafka binding {path}: {reason}")
    return parse_binding(entries)
