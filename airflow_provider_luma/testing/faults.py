"""
Scripted faults: what the next requests of one kind (create, poll, output download, Files API, upload)
should suffer.

Faults are queued per method and applied first-in first-out, each for ``times`` requests. They are set by
tests through ``LumaEmulator.add_fault`` or ``POST /_emulator/faults``, never by magic strings in a request,
so the product under test cannot trigger them by accident. A fault applies only to a request that has
authenticated (an API key that is valid, or an upload URL whose signature is): a request refused with 401
or 403 leaves the fault queued for the next real one.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

Method = Literal["POST", "GET", "OUTPUT", "FILES", "UPLOAD"]
Kind = Literal[
    "status",
    "slow",
    "read_timeout",
    "drop",
    "drop_after_create",
    "proxy_after_create",
    "malformed",
    "drop_midway",
    "trickle",
]

METHODS: tuple[str, ...] = get_args(Method)
KINDS: tuple[str, ...] = get_args(Kind)
_AFTER_CREATE = frozenset({"drop_after_create", "proxy_after_create"})
_KINDS_FOR_METHOD = {
    "POST": frozenset(KINDS) - {"drop_midway", "trickle"},
    "GET": frozenset(KINDS) - _AFTER_CREATE - {"drop_midway"},
    "OUTPUT": frozenset(KINDS) - _AFTER_CREATE - {"trickle"},
    "FILES": frozenset(KINDS) - _AFTER_CREATE - {"drop_midway"},
    "UPLOAD": frozenset({"status", "slow", "read_timeout", "drop"}),
}
#: Methods answered by storage (S3-style XML errors), not by the API.
STORAGE_METHODS = frozenset({"OUTPUT", "UPLOAD"})
#: A gateway's own error pages (nginx's wording): HTML, no ``detail``, no API headers.
PROXY_REASONS: dict[int, str] = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}

#: The documented ``detail`` for a forced status on the API (one of several where the docs list more).
API_DETAILS: dict[int, str] = {
    400: "Prompt must be between 1 and 6000 characters",
    401: "Missing or invalid API key",
    402: "Insufficient credits. Please add credits to continue.",
    403: "API client is suspended",
    404: "Generation not found",
    413: "Image exceeds 50 MB size limit",
    422: "source: invalid base64 data",
    429: "Rate limit exceeded",
    500: "Internal server error",
    502: "Upstream service unavailable",
    503: "Image URL ingestion unavailable",
}
RATE_LIMIT_DETAILS = {
    "rpm": "Rate limit exceeded",
    "concurrency": "Too many concurrent jobs",
    "abuse": "Too many requests",
}


@dataclass(frozen=True)
class Fault:
    """
    One scripted fault.

    :param method: ``"POST"`` (create), ``"GET"`` (poll), ``"OUTPUT"`` (download of an output URL),
        ``"FILES"`` (any ``/v1/files`` request) or ``"UPLOAD"`` (a PUT to a file's upload URL; ``status``,
        ``slow``, ``read_timeout`` and ``drop`` only; ``read_timeout`` stores the bytes, then answers late).
    :param status: answer with this HTTP status (kind ``"status"``, implied when only ``status`` is given);
        the API answers with the documented ``detail`` and headers for it and creates nothing; an output
        download answers with an S3-style XML error.
    :param kind: ``"status"``; ``"slow"`` (wait ``delay`` seconds, then behave normally); ``"read_timeout"``
        (behave normally, e.g. create the generation, then answer only after ``delay``); ``"drop"`` (close
        the connection before doing anything); ``"drop_after_create"`` (POST only: create the generation,
        send the headers and half the body, then close); ``"proxy_after_create"`` (POST only: handle the
        request normally, so a valid one creates its generation, then answer with a gateway's error page
        of ``status``, 502 by default: the 201 lost between the origin and a load balancer);
        ``"malformed"`` (behave normally but send a truncated body; a POST still creates);
        ``"drop_midway"`` (OUTPUT only: send the headers and half the image, then close); ``"trickle"``
        (GET only: behave normally, but send the body one byte every ``delay`` seconds, as a
        congested link or a misbehaving proxy does: each read succeeds, the whole takes long).
    :param proxy: for a forced ``status`` on POST or GET: the answer comes from a load balancer in front
        of the API, not from the API: an HTML page, without ``X-API-Version``, ``X-Request-Id`` or a
        ``detail`` (nothing is created). Implied by ``"proxy_after_create"``.
    :param delay: seconds, for ``slow`` and ``read_timeout``.
    :param times: how many matching requests get this fault.
    :param detail: overrides the ``detail`` of a forced status.
    :param retry_after: ``Retry-After`` seconds for a forced 429 (default 1 for ``rpm``, 60 for
        ``concurrency``, 1 for ``abuse``) or a forced 503/502 (sent only when given).
    :param rate_limit: which 429 to imitate: ``"rpm"`` (with ``X-RateLimit-*``), ``"concurrency"``
        or ``"abuse"`` (``Retry-After`` only).
    :param headers: extra response headers.
    """

    method: Method
    status: int | None = None
    kind: Kind | None = None
    delay: float = 0.0
    times: int = 1
    detail: str | None = None
    retry_after: int | None = None
    rate_limit: Literal["rpm", "concurrency", "abuse"] = "rpm"
    headers: dict[str, str] = field(default_factory=dict)
    proxy: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Fault.method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.kind is None:
            if self.status is None:
                raise ValueError("Fault needs a status or a kind")
            object.__setattr__(self, "kind", "status")
        if self.kind not in _KINDS_FOR_METHOD[self.method]:
            valid = ", ".join(k for k in KINDS if k in _KINDS_FOR_METHOD[self.method])
            raise ValueError(f"Fault.kind {self.kind!r} does not apply to {self.method}; valid: {valid}")
        if self.kind == "proxy_after_create":
            object.__setattr__(self, "proxy", True)
            if self.status is None:
                object.__setattr__(self, "status", 502)
        if self.proxy and (
            self.method in STORAGE_METHODS or self.kind not in ("status", "proxy_after_create")
        ):
            raise ValueError("Fault.proxy applies to a forced status on POST, GET or FILES")
        if self.kind in ("status", "proxy_after_create") and (
            self.status is None or not 400 <= self.status <= 599
        ):
            raise ValueError(f"Fault kind {self.kind!r} needs an error status 400-599, got {self.status!r}")
        if self.times < 1:
            raise ValueError("Fault.times must be at least 1")
        if self.rate_limit not in RATE_LIMIT_DETAILS:
            raise ValueError(f"Fault.rate_limit must be one of {', '.join(RATE_LIMIT_DETAILS)}")

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Fault:
        """Build from the JSON the control plane receives (the same field names)."""
        return cls(**body)

    def _default_wait(self) -> int:
        return 60 if self.rate_limit == "concurrency" else 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def proxy_page(self) -> tuple[int, str, dict[str, str]]:
        """(status, HTML, headers) of a gateway's own error page for this fault's status."""
        assert self.status is not None
        title = f"{self.status} {PROXY_REASONS.get(self.status, 'Error')}"
        html = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
        )
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return self.status, html, headers

    def api_error(self, rpm_limit: int, now: float) -> tuple[int, str, dict[str, str]]:
        """(status, detail, headers) of a forced status on ``/v1``, as the real limit would send them."""
        assert self.status is not None
        headers = dict(self.headers)
        if self.status == 429:
            detail = self.detail or RATE_LIMIT_DETAILS[self.rate_limit]
            wait = self.retry_after if self.retry_after is not None else self._default_wait()
            headers["Retry-After"] = str(wait)
            if self.rate_limit == "rpm":
                headers["X-RateLimit-Limit"] = str(rpm_limit)
                headers["X-RateLimit-Remaining"] = "0"
                headers["X-RateLimit-Reset"] = str(int(now) + wait)
            return self.status, detail, headers
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        default = "File not found" if self.method == "FILES" and self.status == 404 else None
        return self.status, self.detail or default or API_DETAILS.get(self.status, "Error"), headers


class FaultQueue:
    """Faults waiting per method, first in first out; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, collections.deque[list[Any]]] = {m: collections.deque() for m in METHODS}

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._queues[fault.method].append([fault, fault.times])

    def take(self, method: str) -> Fault | None:
        """The fault for the next request of ``method``, using up one of its ``times``."""
        with self._lock:
            queue = self._queues[method]
            if not queue:
                return None
            entry = queue[0]
            entry[1] -= 1
            if entry[1] == 0:
                queue.popleft()
            fault: Fault = entry[0]
            return fault

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {**fault.to_json(), "remaining": left}
                for queue in self._queues.values()
                for fault, left in queue
            ]

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()
