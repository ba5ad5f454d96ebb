"""Test configuration: fixtures live in tests/fixtures and are loaded as plugins."""

pytest_plugins = [
    "tests.fixtures.stack",
    "tests.fixtures.kube",
    "tests.fixtures.node",
    "tests.fixtures.operator",
    "tests.fixtures.secured_kafka",
]
