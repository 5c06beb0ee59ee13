"""Text helpers the domain shares: the URL slug of a name."""

from __future__ import annotations

import re
import unicodedata


def slugify(name: str, fallback: str) -> str:
    """`name` as a URL slug (ASCII letters, digits and hyphens, at most 60 characters), or
    `fallback` when it has no letter or digit to keep."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:60] or fallback
