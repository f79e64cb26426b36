"""
The one redaction of free text: whatever looks like a credential is cut out before it is quoted.

Free text is what the provider did not write itself: an error body, the message of an httpx
exception, a bad value a user gave. Any of it may hold a presigned URL (whose query string is its
signature), an ``Authorization`` value (h11 quotes a header it refuses) or a Luma API key.
"""

from __future__ import annotations

import re

REDACTED = "<redacted>"
#: A query string (a presigned URL's signature), an ``Authorization`` value as h11 quotes it
#: (``b'Bearer ...'``), or something shaped like a Luma API key.
_SECRET_LOOKING = re.compile(r"\?[^\s\"']*|Bearer\s*[^\s\"']*|luma-api-[A-Za-z0-9_-]+")


def redact_secrets(text: str) -> str:
    """``text`` with whatever looks like a URL signature, a bearer token or a key cut out."""
    return _SECRET_LOOKING.sub(REDACTED, text)
