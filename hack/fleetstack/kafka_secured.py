"""Kafka's secured listeners: SASL_SSL with SCRAM and PLAIN, and SSL with mutual TLS (a client
certificate required), a CA of the stack's own, and a binding directory for each in the format
eventfleet reads Kafka credentials in (docs/security.md).

Everything lives in the kafka component's folder, made once and reused: the CA, the broker's
certificate and a client certificate (openssl, well under a second), a random password, and the
SCRAM credentials (one JVM run of Kafka's ConfigCommand against the plaintext listener, recorded
in the broker's data so a `hack/stack reset kafka` makes them again).
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

from .common import HOST, find_tool
from .processes import run_quiet

USERNAME = "eventfleet"
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
CERT_DAYS = 3650


class SecuredListener:
    def __init__(self, home: Path, port: int, log: Path, ssl_port: int) -> None:
        self.home = home
        self.tls = home / "tls"
        self.binding = home / "binding"  # one file per key, like a mounted Secret
        self.ssl_binding = home / "binding-mtls"
        self.port = port
        self.ssl_port = ssl_port
        self.log = log

    def env(self) -> dict[str, str]:
        """What `hack/stack env` exports about these listeners."""
        return {
            "EVENTFLEET_KAFKA_SASL_BOOTSTRAP": f"{HOST}:{self.port}",
            # Directories in the binding Secret format (one file per key): SASL_SSL with
            # SCRAM-SHA-512 for user eventfleet, and SSL with the stack's client certificate.
            "EVENTFLEET_KAFKA_SASL_BINDING": str(self.binding),
            "EVENTFLEET_KAFKA_SSL_BOOTSTRAP": f"{HOST}:{self.ssl_port}",
            "EVENTFLEET_KAFKA_SSL_BINDING": str(self.ssl_binding),
        }

    def listeners(self) -> str:
        """The entries of `listeners` (and `advertised.listeners`) for server.properties."""
        return f"SASL_SSL://{HOST}:{self.port},SSL://{HOST}:{self.ssl_port}"

    def protocol_map(self) -> str:
        return "SASL_SSL:SASL_SSL,SSL:SSL"

    @property
    def keystore(self) -> Path:
        return self.tls / "broker.p12"

    @property
    def password(self) -> str:
        return (self.tls / "password").read_text().strip()

    def prepare(self) -> None:
        """The CA, the broker's certificate and keystore, the password: made once."""
        if not (self.tls / ".complete").is_file():
            self._make_pki()
        if not (self.tls / ".client-complete").is_file():
            self._make_client_certificate()  # a stack made before the mTLS listener lacks it
        self._write_binding()

    def _make_pki(self) -> None:
        openssl = find_tool("kafka", "openssl", "install OpenSSL (Debian: openssl)")
        self.tls.mkdir(parents=True, exist_ok=True)
        self.tls.chmod(0o700)
        (self.tls / "password").write_text(secrets.token_hex(16) + "\n")
        (self.tls / "password").chmod(0o600)
        ca_key, ca_crt = self.tls / "ca.key", self.tls / "ca.crt"
        key, csr, crt = self.tls / "broker.key", self.tls / "broker.csr", self.tls / "broker.crt"
        ext = self.tls / "broker.ext"
        ext.write_text(f"subjectAltName=IP:{HOST},DNS:localhost\nextendedKeyUsage=serverAuth\n")
        steps = [
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", CERT_DAYS,
             "-subj", "/CN=eventfleet local stack CA"],
            [openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
            [openssl, "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
             "-CAcreateserial", "-out", crt, "-days", CERT_DAYS, "-extfile", ext],
            [openssl, "pkcs12", "-export", "-in", crt, "-inkey", key, "-certfile", ca_crt,
             "-name", "broker", "-out", self.keystore, "-passout", f"pass:{self.password}"],
        ]  # fmt: skip
        for step in steps:
            run_quiet([str(s) for s in step], self.log, "kafka", "making the TLS files", timeout=60)
        (self.tls / ".complete").write_text("")

    def _make_client_certificate(self) -> None:
        """A client certificate signed by the stack's CA, for the SSL listener's mutual TLS."""
        openssl = find_tool("kafka", "openssl", "install OpenSSL (Debian: openssl)")
        ca_key, ca_crt = self.tls / "ca.key", self.tls / "ca.crt"
        key, csr, crt = self.tls / "client.key", self.tls / "client.csr", self.tls / "client.crt"
        ext = self.tls / "client.ext"
        ext.write_text("extendedKeyUsage=clientAuth\n")
        steps = [
            # An unencrypted key, as the binding's user.key must be.
            [openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key],
            [openssl, "req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={USERNAME}"],
            [openssl, "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
             "-CAcreateserial", "-out", crt, "-days", CERT_DAYS, "-extfile", ext],
        ]  # fmt: skip
        for step in steps:
            run_quiet([str(s) for s in step], self.log, "kafka", "making the TLS files", timeout=60)
        key.chmod(0o600)
        (self.tls / ".client-complete").write_text("")

    def _write_binding(self) -> None:
        ca = (self.tls / "ca.crt").read_text()
        _write_files(
            self.binding,
            {
                "bootstrap.servers": f"{HOST}:{self.port}",
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "username": USERNAME,
                "password": self.password,
                "ca.crt": ca,
            },
        )
        _write_files(
            self.ssl_binding,
            {
                "bootstrap.servers": f"{HOST}:{self.ssl_port}",
                "security.protocol": "SSL",
                "ca.crt": ca,
                "user.crt": (self.tls / "client.crt").read_text(),
                "user.key": (self.tls / "client.key").read_text(),
            },
        )

    def server_properties(self) -> list[str]:
        """Lines for server.properties (beside the plaintext listener)."""
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        plain = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{USERNAME}="{self.password}";'
        )
        prefix, ssl = "listener.name.sasl_ssl", "listener.name.ssl"
        return [
            f"sasl.enabled.mechanisms={','.join(MECHANISMS)}",
            f"{prefix}.scram-sha-512.sasl.jaas.config={scram}",
            f"{prefix}.scram-sha-256.sasl.jaas.config={scram}",
            f"{prefix}.plain.sasl.jaas.config={plain}",
            f"{prefix}.ssl.keystore.location={self.keystore}",
            f"{prefix}.ssl.keystore.password={self.password}",
            f"{prefix}.ssl.keystore.type=PKCS12",
            # The SSL listener: mutual TLS, a client certificate signed by the stack's CA.
            f"{ssl}.ssl.client.auth=required",
            f"{ssl}.ssl.keystore.location={self.keystore}",
            f"{ssl}.ssl.keystore.password={self.password}",
            f"{ssl}.ssl.keystore.type=PKCS12",
            f"{ssl}.ssl.truststore.location={self.tls / 'ca.crt'}",
            f"{ssl}.ssl.truststore.type=PEM",
        ]

    def ensure_scram_user(self, java_base: list[str], plaintext: str, data: Path) -> None:
        """The SCRAM credentials of USERNAME, set once per password and broker data."""
        marker = self.home / "scram-credentials.done"
        del data  # the marker sits beside the data: `reset` removes both
        digest = hashlib.sha256(self.password.encode()).hexdigest()
        if marker.is_file() and marker.read_text() == digest:
            return
        # One mechanism per request: Kafka refuses two changes of one user in one request.
        for mechanism in MECHANISMS[:2]:
            self._alter_user(java_base, plaintext, f"{mechanism}=[password={self.password}]")
        marker.write_text(digest)

    def _alter_user(self, java_base: list[str], plaintext: str, credentials: str) -> None:
        run_quiet(
            [
                *java_base,
                "kafka.admin.ConfigCommand",
                "--bootstrap-server",
                plaintext,
                "--alter",
                "--add-config",
                credentials,
                "--entity-type",
                "users",
                "--entity-name",
                USERNAME,
            ],
            self.log,
            "kafka",
            "setting the SCRAM credentials",
            timeout=120,
        )


def _write_files(folder: Path, values: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for key, value in values.items():
        path = folder / key
        if not path.is_file() or path.read_text() != value:
            path.write_text(value)
            path.chmod(0o600)
