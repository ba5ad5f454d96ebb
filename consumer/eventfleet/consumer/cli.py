"""`eventfleet consumer`: run one consumer process (see runtime.py for what it does)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from eventfleet.consumer.observability import configure_logging
from eventfleet.consumer.settings import SettingsError, load_settings
from eventfleet.contract.kafka_binding import NO_AUTH, BindingError, KafkaBinding, load_binding

log = logging.getLogger("eventfleet.consumer")


def main(argv: list[str]) -> int:
    try:
        settings = load_settings(argv, os.environ)
    except SettingsError as error:
        print(f"eventfleet consumer: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    binding = kafka_binding(settings.kafka_auth_path, settings.kafka_bootstrap)
    if isinstance(binding, BindingError):
        # The operator checks the Secret before it deploys consumers; this is a hand-run consumer
        # or a Secret edited since.
        print(f"eventfleet consumer: {binding.message}", file=sys.stderr)
        return 2
    from eventfleet.consumer.runtime import Consumer  # noqa: PLC0415 - keeps --help fast

    # Each batch allocates tens of thousands of short-lived objects (acyclic: reference counting
    # frees them). Rarer young collections and a frozen start-up heap keep the cyclic collector
    # from rescanning them and everything imported (CPU per event, and pauses in tail latency).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # The database thread gives up the GIL for every statement and must get it back from the
    # parsing thread afterwards: with Python's default 5 ms switch interval each statement
    # could wait that long. 1 ms measured best (shorter intervals cost more in switching).
    sys.setswitchinterval(0.001)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        return Consumer(settings, stop=stop, kafka_auth=binding.client_config()).run()
    except Exception:
        log.exception("consumer failed")
        return 1


def kafka_binding(path: Path | None, bootstrap: str) -> KafkaBinding | BindingError:
    """The Kafka credentials at `path` (none: PLAINTEXT), refused when they name other brokers
    than the consumer's --kafka-bootstrap (which of the two is meant cannot be told)."""
    if path is None:
        return NO_AUTH
    binding = load_binding(path)
    if isinstance(binding, KafkaBinding) and binding.bootstrap_servers not in (None, bootstrap):
        return BindingError(
            f"bootstrap.servers of {path} ({binding.bootstrap_servers}) differs from the "
            f"consumer's kafka_bootstrap ({bootstrap})",
            "bootstrap.servers",
        )
    if isinstance(binding, KafkaBinding):
        log.info("Kafka credentials", extra={"kafka_security": binding.describe()})
    return binding
