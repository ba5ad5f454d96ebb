"""The operator process as a leader-election candidate: wait as a standby, then hold the Lease.

While it waits, the process answers /healthz itself ("standby"), so the kubelet does not kill a
replica for waiting correctly; kopf, which serves /healthz once it runs, starts only after the
Lease is held. Losing the Lease ends the process at once (exit code 3): a graceful stop would
go on acting for seconds after a standby may have taken over. A normal stop releases it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Final

from eventfleet.operator import leadership

log = logging.getLogger(__name__)

LOST_EXIT_CODE: Final = 3
_elector: leadership.Elector | None = None


class _StandbyProbe(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"standby: waiting for the leader Lease\n"
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        del format, args  # probes every few seconds: not worth a log line each


def wait_for_leadership(namespace: str, bind: str, liveness_port: int) -> bool:
    """Block until this process leads (True) or is asked to stop while a standby (False)."""
    global _elector  # noqa: PLW0603 - one candidacy per process
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    probe = ThreadingHTTPServer((bind, liveness_port), _StandbyProbe) if liveness_port else None
    if probe is not None:
        threading.Thread(target=probe.serve_forever, name="standby-probe", daemon=True).start()
    try:
        elector = leadership.Elector(namespace)
        if not elector.acquire(stopping.is_set):
            return False
    finally:
        if probe is not None:
            probe.shutdown()
            probe.server_close()  # kopf's own probe takes the port next
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _elector = elector
    elector.keep(_lost)
    return True


def _lost() -> None:
    logging.shutdown()
    os._exit(LOST_EXIT_CODE)


def release() -> None:
    """At a normal stop: hand the Lease to a standby at once (no-op without leader election)."""
    if _elector is not None:
        _elector.release()
