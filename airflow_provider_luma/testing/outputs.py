"""
Presigned-style URLs, as S3 would mint and check them: output downloads (GET) and file uploads (PUT).

A URL carries ``X-Amz-Date``, ``X-Amz-Expires`` and an HMAC ``X-Amz-Signature`` over its path. The signing
key includes an epoch, so ``expire_output_urls()`` (a new epoch) turns every URL minted so far, download
or upload, into the same 403 an expired one gets. Errors are S3's XML bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlencode
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from collections.abc import Mapping

_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_EPOCHS_REMEMBERED = 1000

ONE_AUTH_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string "
    "parameter or the Authorization header should be specified"
)


class UrlSigner:
    """Mints and verifies output URLs with a per-emulator secret."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def _signature(self, epoch: int, path: str, date: str, expires: int) -> str:
        key = hmac.new(self._secret, str(epoch).encode(), hashlib.sha256).digest()
        return hmac.new(key, f"{path}\n{date}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def mint(
        self, root: str, path: str, now: float, ttl: int, epoch: int, signed_headers: str = "host"
    ) -> str:
        """A URL for ``path`` on the server at ``root`` (``http://host:port/``), valid for ``ttl`` s.

        ``signed_headers`` is what the URL says it binds (an upload binds ``content-type`` too); the
        server checks those headers itself, the signature covers the path and the validity window.
        """
        stamp = datetime.fromtimestamp(now, timezone.utc)
        date = stamp.strftime(_DATE_FORMAT)
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"EMULATOR/{stamp:%Y%m%d}/us-east-1/s3/aws4_request",
            "X-Amz-Date": date,
            "X-Amz-Expires": str(ttl),
            "X-Amz-SignedHeaders": signed_headers,
            "X-Amz-Signature": self._signature(epoch, path, date, ttl),
        }
        return f"{root.rstrip('/')}{path}?{urlencode(query)}"

    def check(
        self, path: str, query: Mapping[str, str], now: float, epoch: int
    ) -> tuple[int, str, str] | None:
        """None when the URL is valid now, else (status, S3 error code, message)."""
        try:
            date = query["X-Amz-Date"]
            expires = int(query["X-Amz-Expires"])
            signature = query["X-Amz-Signature"]
            minted = datetime.strptime(date, _DATE_FORMAT).replace(tzinfo=timezone.utc).timestamp()
        except (KeyError, ValueError):
            return 403, "AccessDenied", "Query-string authentication requires the X-Amz-* parameters"
        if hmac.compare_digest(signature, self._signature(epoch, path, date, expires)):
            if now > minted + expires:
                return 403, "AccessDenied", "Request has expired"
            return None
        # Signed under an earlier epoch: a URL that expire_output_urls() (or reset) retired.
        for old in range(epoch - 1, max(-1, epoch - _EPOCHS_REMEMBERED), -1):
            if hmac.compare_digest(signature, self._signature(old, path, date, expires)):
                return 403, "AccessDenied", "Request has expired"
        return (
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )


def s3_error_xml(code: str, message: str, request_id: str) -> bytes:
    """The XML body S3 sends with an error."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{escape(request_id)}</RequestId></Error>"
    ).encode()
