"""`eventfleet consumer`: run one consumer process (see runtime.py for what it does)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from types import FrameType

from eventfleet.consumer.observability import configure_logging
from eventfleet.consumer.settings import SettingsError, load_settings

log = logging.getLogger("eventfleet.consumer")


def main(argv: list[str]) -> int:
    try:
        settings = load_settings(argv, os.environ)
    except SettingsError as error:
        print(f"eventfleet consumer: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
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
        return Consumer(settings, stop=stop).run()
    except Exception:
        log.exception("consumer failed")
        return 1
