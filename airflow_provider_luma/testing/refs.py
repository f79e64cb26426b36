"""
Checks on one ImageRef (``source`` or ``image_ref[i]``): its shape, then its media.

Media is judged as the API's ingest judges it: base64 bytes by their content (the declared ``media_type``
does not make text an image), ``url`` references by what the fetch proxy would agree to fetch (https to a
public host; the emulator fetches nothing), ``generation_id`` and ``file_id`` by what the caller owns.
Details carry the field path as a prefix, like the documented ones.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_luma.testing.images import read_dimensions, sniff_mime

if TYPE_CHECKING:
    from collections.abc import Callable

REF_FIELDS = ("url", "data", "generation_id", "file_id")
MAX_IMAGE_BYTES = 50 * 1024 * 1024
#: Ids are canonical hyphenated UUIDs (either case): braces, ``urn:uuid:`` and the 32-digit form that
#: Python's ``uuid.UUID`` would also take are not ids the API hands out.
CANONICAL_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

Size = tuple[int, int]


class Rejected(Exception):
    """The request is refused with ``status`` and ``detail`` (a string, or a list for schema errors)."""

    def __init__(self, status: int, detail: str | list[dict[str, Any]]) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Lookups:
    """What the caller's client owns, for ``generation_id`` and ``file_id`` references.

    :param generation_size: (width, height) of the client's generation with this id, or None if unknown.
    :param file_state: (state, pixel size) of the client's file with this id, or None if unknown.
    :param allow_loopback_urls: let ``url`` references name a loopback host (the emulator's option).
    """

    generation_size: Callable[[str], Size | None]
    file_state: Callable[[str], tuple[str, Size | None] | None]
    allow_loopback_urls: bool = False


def check_shape(label: str, ref: dict[str, Any]) -> None:
    """The documented 400s: exactly one of the four sources, and ``media_type`` with ``data``."""
    given = [name for name in REF_FIELDS if ref.get(name) is not None]
    if not given:
        raise Rejected(400, f"{label}: provide either 'url' or 'data', not neither")
    if len(given) > 1:
        raise Rejected(400, f"{label}: provide either 'url' or 'data', not both")
    if ref.get("data") is not None and ref.get("media_type") is None:
        raise Rejected(400, f"{label}: 'media_type' is required with 'data'")


def check_media(label: str, ref: dict[str, Any], lookups: Lookups) -> Size | None:
    """Check one reference's media; returns its pixel size when it can be known."""
    if ref.get("data") is not None:
        try:
            data = base64.b64decode(ref["data"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Rejected(422, f"{label}: invalid base64 data") from exc
        if len(data) > MAX_IMAGE_BYTES:
            raise Rejected(413, f"{label}: image exceeds 50 MB limit")
        if sniff_mime(data) is None:
            raise Rejected(422, f"{label}: content-type is not an image")
        return read_dimensions(data)
    if ref.get("url") is not None:
        if not fetchable(ref["url"], lookups.allow_loopback_urls):
            raise Rejected(422, f"{label}: failed to fetch URL")
        return None
    if ref.get("generation_id") is not None:
        generation_id = ref["generation_id"]
        size = lookups.generation_size(generation_id) if CANONICAL_UUID.match(generation_id) else None
        if size is None:
            raise Rejected(422, f"{label}: generation not found")
        return size
    return _file_size(label, ref["file_id"], lookups)


def _file_size(label: str, file_id: str, lookups: Lookups) -> Size | None:
    found = lookups.file_state(file_id) if CANONICAL_UUID.match(file_id) else None
    if found is None:
        raise Rejected(422, f"{label}: file not found")
    state, size = found
    if state != "ready":
        raise Rejected(422, f"{label}: file is not ready (state: {state})")
    return size


def fetchable(url: str, allow_loopback: bool) -> bool:
    """Whether the fetch proxy would fetch ``url``: https, to a host that is not loopback or private.

    Only literal addresses and ``localhost`` names are judged (the emulator resolves no DNS), so a public
    name that resolves to a private address passes here although the real proxy would refuse it.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if not host:
        return False
    address = _address(host)
    loopback = host == "localhost" or host.endswith(".localhost") or bool(address and address.is_loopback)
    if loopback and allow_loopback:
        return parts.scheme in ("http", "https")
    if parts.scheme != "https" or loopback:
        return False
    return address is None or address.is_global


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host literal names (dotted, bracketed IPv6, or one decimal number), else None."""
    try:
        address = ipaddress.ip_address(int(host) if host.isdigit() else host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
