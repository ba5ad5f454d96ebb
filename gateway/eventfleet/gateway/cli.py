"""`eventfleet gateway`: validate the settings, then serve the app with granian.

Why granian (RSGI): the HTTP parsing, keep-alive and socket work run in Rust, so the two cores
go to validation and producing. Measured on this 2-core machine with wrk on the same host, a
handler that only parses a JSON body answered ~12k req/s on aiohttp, ~19k on uvicorn
(uvloop + httptools, raw ASGI) and ~31k on granian RSGI, one worker each (hack/bench-gateway
measures the gateway beside that ceiling). Several workers share the port (SO_REUSEPORT).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from granian.constants import Interfaces, Loops
from granian.log import LogLevels
from granian.server import Server

from eventfleet.gateway.settings import (
    SETTINGS_JSON_ENV,
    Settings,
    SettingsError,
    load_settings,
    settings_to_json,
)


def main(argv: list[str]) -> int:
    try:
        settings = load_settings(argv, os.environ)
    except SettingsError as error:
        print(f"eventfleet gateway: {error}", file=sys.stderr)
        return 2
    serve(settings)
    return 0


def serve(settings: Settings) -> None:
    os.environ[SETTINGS_JSON_ENV] = settings_to_json(settings)
    with tempfile.TemporaryDirectory(prefix="eventfleet-gateway-metrics-") as metrics_dir:
        # Workers write their metrics here; /metrics adds them up (prometheus multiprocess mode).
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
        Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
        server = Server(
            "eventfleet.gateway.server:create_app",
            address=settings.host,
            port=settings.port,
            interface=Interfaces.RSGI,
            workers=settings.workers,
            loop=Loops.auto,
            backpressure=settings.backpressure,
            factory=True,
            log_level=LogLevels(settings.log_level),
            websockets=False,
            respawn_failed_workers=True,
            workers_kill_timeout=int(settings.shutdown_flush_seconds) + 5,
        )
        server.serve()
