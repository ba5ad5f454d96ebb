"""Swagger UI at /docs, served from the files of the swagger-ui-bundle package: works offline,
nothing is loaded from a CDN."""

from __future__ import annotations

import mimetypes
from importlib import resources
from pathlib import Path
from typing import Final

ASSETS: Final = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")
ICONS: Final = ("favicon-32x32.png", "favicon-16x16.png")

INDEX: Final = b"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>eventfleet gateway - API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
      validatorUrl: null
    });
  </script>
</body>
</html>
"""


def swagger_ui_root() -> Path:
    """The package's folder of Swagger UI dist files (vendor/swagger-ui-<version>)."""
    vendor = Path(str(resources.files("swagger_ui_bundle"))) / "vendor"
    found = sorted(vendor.glob("swagger-ui-*/swagger-ui-bundle.js"))
    if not found:
        raise RuntimeError(f"no Swagger UI files under {vendor}: reinstall swagger-ui-bundle")
    return found[-1].parent


def load_assets() -> dict[str, tuple[bytes, str]]:
    """Path under /docs/ -> (content, content type), read once at start."""
    root = swagger_ui_root()
    assets = {"/docs": (INDEX, "text/html; charset=utf-8")}
    for name in (*ASSETS, *ICONS):
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        assets[f"/docs/{name}"] = ((root / name).read_bytes(), kind)
    return assets
