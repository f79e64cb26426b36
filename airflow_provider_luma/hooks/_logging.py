"""
Keep presigned URLs and keys out of logs and exception messages.

httpx logs every request at INFO on the ``httpx`` logger, URL included; an output URL's query string
is its signature, a credential for an hour. Rather than silencing the logger (and overriding the
user's logging configuration), a filter on it replaces query strings with ``?<redacted>``: the
method, host, path and status stay visible.

Text that comes from elsewhere (an error body, the message of an httpx exception) goes through
:func:`airflow_provider_luma._redaction.redact_secrets`, the one redaction of free text, before it
reaches an exception message.
"""

from __future__ import annotations

import logging

import httpx

from airflow_provider_luma._redaction import REDACTED as _REDACTED


def redact_url(url: httpx.URL | str) -> str:
    """The URL without its query string (which, for a presigned URL, is the credential)."""
    url = httpx.URL(url) if isinstance(url, str) else url
    if not url.query:
        return str(url)
    return f"{url.copy_with(query=None)}?{_REDACTED}"


class RedactQueryStringFilter(logging.Filter):
    """Rewrite URL arguments of a log record so no query string reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        return True


def _redact_arg(value: object) -> object:
    if isinstance(value, httpx.URL) or (isinstance(value, str) and "://" in value and "?" in value):
        return redact_url(value)
    return value


def install_httpx_log_redaction() -> None:
    """Add the filter to the ``httpx`` logger once per process (idempotent)."""
    logger = logging.getLogger("httpx")
    if not any(type(existing).__name__ == RedactQueryStringFilter.__name__ for existing in logger.filters):
        logger.addFilter(RedactQueryStringFilter())
