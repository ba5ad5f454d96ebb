"""The operator's settings from its command line, set once (configure) before kopf starts.

Read as `config.CONFIG` at the time of use, never imported by value: the CLI replaces it after
the handlers' modules were imported.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorConfig:
    default_image: str = "eventfleet:0.1.0"
    workers: int = 8  # EventConsumers handled in parallel by the autoscaling loop
    # A topic that cannot be deleted for this long is left behind (named in a Warning Event)
    # and the finalizer released: a namespace must never stay Terminating for an absent Kafka.
    topic_deletion_timeout_seconds: float = 120.0


CONFIG = OperatorConfig()


def configure(config: OperatorConfig) -> None:
    global CONFIG  # noqa: PLW0603 - set once by the CLI before kopf starts
    CONFIG = config
