"""The console page's static files: read once from the package, served from memory.

Shipped as package data (``qwend/public/console/static``): plain HTML, CSS and
JavaScript modules, no build step, nothing fetched from elsewhere. Serving a
fixed in-memory table means no path from the URL ever reaches the file system.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


@dataclass(frozen=True)
class Asset:
    """One static file."""

    body: bytes
    content_type: str
    etag: str
    """A strong validator: browsers revalidate (``no-cache``) and get 304s."""


def _walk(node: Traversable, prefix: str) -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for child in node.iterdir():
        name = prefix + child.name
        if child.is_dir():
            found |= _walk(child, name + "/")
            continue
        suffix = "." + child.name.rsplit(".", 1)[-1]
        if suffix not in _TYPES:
            continue
        body = child.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        found[name] = Asset(body, _TYPES[suffix], etag)
    return found


def load_assets() -> dict[str, Asset]:
    """Every static file by its path under ``static/`` (``index.html``, ``js/app.js``)."""
    return _walk(resources.files(__package__) / "static", "")


def total_bytes(assets: dict[str, Asset]) -> int:
    """What the whole page weighs (kept well under 300 KB by a test)."""
    return sum(len(a.body) for a in assets.values())
