"""Where a secret leaked: every form a server or a library may write it in (as is,
URL-encoded, JSON-escaped once or twice), of the whole secret and of every prefix
of 8+ characters (a copy cut short)."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus

MIN_PREFIX = 8


def _json_forms(value: str) -> list[str]:
    escaped = [json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]]
    escaped += [form.replace("/", "\\/") for form in escaped]  # the '\/' of some encoders
    return escaped + [json.dumps(form)[1:-1] for form in escaped]  # JSON in JSON


def secret_forms(value: str) -> list[str]:
    url = [quote(value), quote(value, safe=""), quote_plus(value, safe=""),
           re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(value, safe=""))]
    return [value, *url, *_json_forms(value), *(json.dumps(u)[1:-1] for u in url)]


def leaks(secret: str, text: str) -> list[str]:
    """Every form of the secret and of its 8+ character prefixes found in `text`."""
    return sorted({form for size in range(min(MIN_PREFIX, len(secret)), len(secret) + 1)
                   for form in secret_forms(secret[:size]) if form in text})
