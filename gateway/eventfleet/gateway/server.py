"""What each granian worker process imports: the app, built from the settings the CLI validated
and handed down in the environment."""

from __future__ import annotations

import logging
import os

from eventfleet.gateway.app import Gateway
from eventfleet.gateway.settings import SETTINGS_JSON_ENV, settings_from_json


def create_app() -> Gateway:
    settings = settings_from_json(os.environ[SETTINGS_JSON_ENV])
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    return Gateway(settings)
