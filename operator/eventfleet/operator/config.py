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


CONFIG = OperatorConfig()


def configure(config: OperatorConfig) -> None:
    global CONFIG  # noqa: PLW0603 - set once by the CLI before kopf starts
    CONFIG = config
