"""Pure parts of hack/demo.py: where the demo finds each consumer replica's /metrics."""

from __future__ import annotations

from tests.fixtures.scripts import hack_module

demo = hack_module("demo")

LOG = """\
2026-12-03 10:00:00 INFO running Deployments matching managed-by=eventfleet-operator
2026-12-03 10:00:01 INFO gamemetrics/logger-consumer: replica 0 started (pid 11, port 40001)
2026-12-03 10:00:01 INFO gamemetrics/stats-consumer: replica 0 started (pid 12, port 40002)
2026-12-03 10:00:09 INFO gamemetrics/stats-consumer: replica 1 started (pid 13, port 40003)
2026-12-03 10:01:30 INFO gamemetrics/stats-consumer: replica 1 stopped (exit 0)
2026-12-03 10:01:31 INFO gamemetrics/logger-consumer: replica 0 stopped (exit -9)
2026-12-03 10:01:32 INFO gamemetrics/logger-consumer: replica 0 started (pid 14, port 40004)
"""


def test_the_running_replicas_and_their_latest_ports() -> None:
    assert demo.replica_ports(LOG) == {
        ("gamemetrics/logger-consumer", 0): 40004,  # restarted on a new port
        ("gamemetrics/stats-consumer", 0): 40002,
    }


def test_only_the_last_run_of_the_pod_runner_counts() -> None:
    earlier = "x INFO gamemetrics/old-consumer: replica 0 started (pid 1, port 39999)\n"
    assert ("gamemetrics/old-consumer", 0) not in demo.replica_ports(earlier + LOG)
    assert demo.replica_ports("") == {}
