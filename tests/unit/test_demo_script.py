"""Pure parts of hack/demo.py (hack/demo_cluster.py): which operator pod is the leader."""

from __future__ import annotations

from tests.fixtures.scripts import hack_module

demo = hack_module("demo_cluster")

PODS = {
    "eventfleet-operator-6d9f-abcde": "10.88.0.7",
    "eventfleet-operator-6d9f-abc": "10.88.0.8",
    "eventfleet-operator-6d9f-xyz12": "",
}


def test_the_leader_is_the_pod_whose_name_starts_its_lease_identity() -> None:
    assert demo.leader_pod("eventfleet-operator-6d9f-abcde-1-0a1b2c", PODS) == "10.88.0.7"
    # A pod whose name is a prefix of another's is not mistaken for it.
    assert demo.leader_pod("eventfleet-operator-6d9f-abc-1-0a1b2c", PODS) == "10.88.0.8"


def test_no_leader_without_a_holder_or_an_address() -> None:
    assert demo.leader_pod("", PODS) is None
    assert demo.leader_pod("eventfleet-operator-6d9f-xyz12-1-ffffff", PODS) is None
    assert demo.leader_pod("someone-else-1-000000", PODS) is None


def test_the_demo_entry_point_loads_with_its_modules() -> None:
    entry = hack_module("demo")
    assert callable(entry.main)
    assert entry.NAMESPACE == demo.NAMESPACE == "gamemetrics"
