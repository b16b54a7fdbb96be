"""The tracker as it goes on the wire: minified once (rjsmin), gzip-compressed once, and named
by a hash of its content for the versioned, immutable URL ``/js/pulse.<version>.js``."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import rjsmin

SOURCE = Path(__file__).resolve().parent / "static" / "pulse.js"


@dataclass(frozen=True, slots=True)
class TrackerScript:
    """The minified tracker, its gzip form and its version (a hash of the minified text)."""

    plain: bytes
    gzipped: bytes
    version: str

    @classmethod
    def build(cls, source: str) -> TrackerScript:
        """Minify and compress ``source`` (the readable tracker)."""
        plain = rjsmin.jsmin(source, keep_bang_comments=True).encode()
        gzipped = gzip.compress(plain, compresslevel=9, mtime=0)
        return cls(plain, gzipped, hashlib.sha256(plain).hexdigest()[:12])

    @property
    def path(self) -> str:
        """The versioned URL path, cacheable forever (a new tracker gets a new path)."""
        return f"/js/pulse.{self.version}.js"


@cache
def tracker_script(source: Path = SOURCE) -> TrackerScript:
    """The tracker built from ``source``, once per process (the server and the panel share it)."""
    return TrackerScript.build(source.read_text(encoding="utf-8"))
