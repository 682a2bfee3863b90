"""What every Melon Hall web page needs from the server: templates, static files, safe values.

The pages are plain HTML templates with ``{{ name }}`` placeholders, filled with values that are
already escaped; static files are served with their content digest in the URL, so a new release
is never served stale from a browser's cache. What the pages of all three services share (the
base CSS, the working screens' controls, the API helper) is served once from this package under
``/static/common`` (``COMMON``), linked before each page's own files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


class WebAssets:
    """A service's ``web/`` folder: templates at its top, static files under ``static/``."""

    def __init__(self, web_dir: Path, static_url: str) -> None:
        self.web_dir = web_dir
        self.static_url = static_url
        self.template = cache(self._read_template)
        self._digest = cache(self._read_digest)

    def url(self, name: str) -> str:
        """A static file's URL with its content digest."""
        return f"{self.static_url}/{name}?v={self._digest(name)}"

    def mount(self, app: FastAPI, name: str) -> None:
        """Serve the static files on ``app`` at ``static_url``; once, however often it is asked."""
        if any(getattr(route, "path", None) == self.static_url for route in app.routes):
            return
        app.mount(self.static_url, StaticFiles(directory=self.web_dir / "static"), name=name)

    def _read_template(self, name: str) -> str:
        return (self.web_dir / name).read_text(encoding="utf-8")

    def _read_digest(self, name: str) -> str:
        return hashlib.sha256((self.web_dir / "static" / name).read_bytes()).hexdigest()[:12]


COMMON = WebAssets(Path(__file__).resolve().parent / "assets", "/static/common")
"""The files every service's pages share: ``base.css``, ``controls.css`` and ``api.js``."""


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{{ name }}`` placeholders with values that are already escaped HTML.

    A placeholder without a value is a bug in the template and raises KeyError.
    """
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def script_json(value: Any) -> str:
    """JSON safe to place inside a ``<script>`` element."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
