"""
The emulator's memory: settings, API keys and their clients, generations, files, the two rate limits,
planned failures and counters.

Everything here is guarded by one lock, because the app runs in the uvicorn thread while tests call the
``LumaEmulator`` methods from the main thread. States are computed lazily from timestamps on each read,
so no background task moves them. Time comes from an injectable clock so tests can move it without
sleeping.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_luma.testing.files import FileStore

#: Returns the current time as Unix seconds (``time.time`` by default).
Clock = Callable[[], float]

TERMINAL_STATES = frozenset({"completed", "failed"})
STATES = ("queued", "processing", "completed", "failed")

#: The documented ``failure_reason`` strings; the rest are the emulator's own wording.
FAILURE_REASONS: dict[str, str] = {
    "content_moderated": "Generation output was flagged by our content moderation system.",
    "budget_exhausted": "Insufficient credits to complete this generation.",
    "generation_failed": "Generation failed",
    "output_not_found": "Output artifacts not found",
    "image_too_large": "Input image exceeds the size limit",
    "unsupported_format": "Input image format is not supported",
    "corrupt_input": "Input image could not be decoded",
    "invalid_request": "The request was invalid",
    "rate_limited": "Upstream rate limit exceeded",
}
RPM_WINDOW_SECONDS = 60.0
#: A job still active after this long is pruned from the concurrency count.
ACTIVE_JOB_TTL_SECONDS = 3600.0
_OUTPUT_CACHE_SIZE = 64
#: The client (account) that owns the emulator's ``api_key``; ``other_api_key`` belongs to ``OTHER_CLIENT``.
PRIMARY_CLIENT = "primary"
OTHER_CLIENT = "other"
KEY_STATUSES = ("active", "revoked", "expired")


@dataclass
class EmulatorSettings:
    """
    Tunable behaviour, restored by ``reset()``.

    :param queued_seconds: how long a new generation reports ``queued``.
    :param processing_seconds: how long it then reports ``processing`` before ending.
    :param long_edge: pixel length of an output's long edge (2048 like uni-1).
    :param rpm_limit: POSTs allowed per sliding 60 s window.
    :param concurrency_limit: non-terminal generations allowed at once.
    :param url_ttl_seconds: lifetime of a minted output URL (``X-Amz-Expires``).
    :param output_padding_bytes: pad every output file to at least this many bytes (0: no padding).
    :param file_ingest_seconds: how long a completed file stays ``pending`` before it is ``ready`` or
        ``failed`` (0: the first read after ``complete`` shows the verdict).
    :param upload_url_ttl_seconds: lifetime of a file's presigned PUT URL.
    :param allow_loopback_urls: accept ``url`` references to loopback hosts (``127.0.0.1``, ``::1``,
        ``localhost``), over http too, e.g. a test's own server; the real API refuses them.
    """

    queued_seconds: float = 1.0
    processing_seconds: float = 3.0
    long_edge: int = 2048
    rpm_limit: int = 30
    concurrency_limit: int = 10
    url_ttl_seconds: int = 3600
    output_padding_bytes: int = 0
    file_ingest_seconds: float = 0.0
    upload_url_ttl_seconds: int = 900
    allow_loopback_urls: bool = False


@dataclass
class Generation:
    """One generation as the emulator stores it; ``state_at`` derives the visible state."""

    id: str
    client: str
    type: str
    model: str
    prompt: str
    output_format: str
    width: int
    height: int
    created: float
    processing_at: float
    ends_at: float
    planned_failure: tuple[str, str] | None = None
    forced_state: str | None = None
    forced_failure: tuple[str, str] | None = None

    def state_at(self, now: float) -> str:
        if self.forced_state is not None:
            return self.forced_state
        if now < self.processing_at:
            return "queued"
        if now < self.ends_at:
            return "processing"
        return "failed" if self.planned_failure else "completed"

    def failure(self) -> tuple[str, str] | None:
        return self.forced_failure if self.forced_state == "failed" else self.planned_failure

    def created_at(self) -> str:
        return datetime.fromtimestamp(self.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class EmulatorStats:
    """
    A snapshot of the counters.

    :param generations_created: POSTs that created a generation (proves nothing was paid for twice).
    :param requests: requests received, keyed ``"POST /v1/generations"``, ``"GET /v1/generations/{id}"``
        and ``"GET output"``; a ``slow`` fault whose client hung up before the answer also counts under
        ``"<method> abandoned"`` once the server has let the request go (unprocessed).
    :param output_authorization_refused: output downloads refused because they carried ``Authorization``.
    :param requests_with_cookie: API requests and output downloads that carried a ``Cookie`` header
        (the API sets none unless a fault's ``headers`` add a ``Set-Cookie``; a client that sends one
        back shares state between requests, and between the keys of a shared client).
    """

    generations_created: int = 0
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    output_authorization_refused: int = 0
    requests_with_cookie: int = 0
    files_created: int = 0
    file_uploads: int = 0
    file_upload_bytes: int = 0
    upload_authorization_refused: int = 0


@dataclass(frozen=True)
class ApiKey:
    """A key the emulator knows: its status and the client (account) it belongs to.

    Generations, files and rate limits belong to the client, not the key (the docs' scope rule), so two
    keys of one client see each other's work and keys of two clients see none of it.
    """

    status: str
    client: str


@dataclass(frozen=True)
class Admission:
    """The verdict of the rate limits on one POST: ``None`` status means admitted."""

    status: int | None
    headers: dict[str, str]
    detail: str | None = None


class EmulatorState:
    """All mutable emulator state behind one lock; the app and the ``LumaEmulator`` methods share it."""

    def __init__(
        self, settings: EmulatorSettings, api_key: str, other_api_key: str, clock: Clock = time.time
    ) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._initial = dataclasses.replace(settings)
        self._api_key = api_key
        self._other_api_key = other_api_key
        self.settings = settings
        self.url_epoch = 0
        self._clear()

    def _clear(self) -> None:
        self.generations: dict[str, Generation] = {}
        self.files = FileStore(self.clock)
        self.rpm_windows: collections.defaultdict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque
        )
        self.planned_failures: collections.deque[tuple[str, str]] = collections.deque()
        self.generations_created = 0
        self.requests: collections.Counter[str] = collections.Counter()
        self.output_authorization_refused = 0
        self.upload_authorization_refused = 0
        self.requests_with_cookie = 0
        self.output_cache: collections.OrderedDict[tuple[str, str], bytes] = collections.OrderedDict()
        self.api_keys: dict[str, ApiKey] = {
            self._api_key: ApiKey("active", PRIMARY_CLIENT),
            self._other_api_key: ApiKey("active", OTHER_CLIENT),
        }

    def reset(self) -> None:
        """Forget generations, planned failures, counters, rate windows and added keys; restore settings."""
        with self.lock:
            self._clear()
            self.settings = dataclasses.replace(self._initial)
            # Invalidate URLs minted before the reset too.
            self.url_epoch += 1

    def configure(self, **changes: Any) -> None:
        with self.lock:
            self.settings = dataclasses.replace(self.settings, **changes)

    def add_api_key(self, key: str, status: str, client: str) -> None:
        if status not in KEY_STATUSES:
            raise ValueError(f"unknown key status {status!r}; valid: {', '.join(KEY_STATUSES)}")
        with self.lock:
            self.api_keys[key] = ApiKey(status, client)

    def stats(self) -> EmulatorStats:
        with self.lock:
            return EmulatorStats(
                generations_created=self.generations_created,
                requests=collections.Counter(self.requests),
                output_authorization_refused=self.output_authorization_refused,
                requests_with_cookie=self.requests_with_cookie,
                files_created=self.files.created,
                file_uploads=self.files.uploads,
                file_upload_bytes=self.files.upload_bytes,
                upload_authorization_refused=self.upload_authorization_refused,
            )

    def count_request(self, key: str) -> None:
        with self.lock:
            self.requests[key] += 1

    def admit(self, client: str) -> Admission:
        """Apply the client's RPM window, then its concurrency cap, to a POST about to create a generation.

        The RPM window holds the POSTs that were admitted; the 201's headers count this one as used.
        """
        with self.lock:
            now = self.clock()
            limit = self.settings.rpm_limit
            window = self.rpm_windows[client]
            while window and window[0] <= now - RPM_WINDOW_SECONDS:
                window.popleft()
            if len(window) >= limit:
                ages_out = window[0] + RPM_WINDOW_SECONDS
                return Admission(
                    429,
                    {
                        "Retry-After": str(max(1, math.ceil(ages_out - now))),
                        "X-RateLimit-Limit": str(limit),
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": str(math.ceil(ages_out)),
                    },
                    "Rate limit exceeded",
                )
            if self.active_jobs(now, client) >= self.settings.concurrency_limit:
                return Admission(429, {"Retry-After": "60"}, "Too many concurrent jobs")
            window.append(now)
            return Admission(
                None,
                {
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": str(max(0, limit - len(window))),
                    "X-RateLimit-Reset": str(int(now + RPM_WINDOW_SECONDS)),
                },
            )

    def active_jobs(self, now: float, client: str) -> int:
        return sum(
            1
            for generation in self.generations.values()
            if generation.client == client
            and generation.state_at(now) not in TERMINAL_STATES
            and now - generation.created < ACTIVE_JOB_TTL_SECONDS
        )

    def create(
        self, *, client: str, type: str, model: str, prompt: str, output_format: str, width: int, height: int
    ) -> Generation:
        with self.lock:
            now = self.clock()
            processing_at = now + self.settings.queued_seconds
            generation = Generation(
                id=str(uuid.uuid4()),
                client=client,
                type=type,
                model=model,
                prompt=prompt,
                output_format=output_format,
                width=width,
                height=height,
                created=now,
                processing_at=processing_at,
                ends_at=processing_at + self.settings.processing_seconds,
                planned_failure=self.planned_failures.popleft() if self.planned_failures else None,
            )
            self.generations[generation.id] = generation
            self.generations_created += 1
            return generation

    def get(self, generation_id: str, client: str) -> Generation | None:
        """The generation if ``client`` owns it: another client's is as unknown as a missing one."""
        with self.lock:
            generation = self.generations.get(generation_id)
            return generation if generation is not None and generation.client == client else None

    def plan_failures(self, code: str, count: int, reason: str | None) -> None:
        if code not in FAILURE_REASONS:
            raise ValueError(f"unknown failure code {code!r}; valid: {', '.join(FAILURE_REASONS)}")
        with self.lock:
            self.planned_failures.extend([(code, reason or FAILURE_REASONS[code])] * count)

    def set_state(
        self,
        generation_id: str,
        state: str,
        failure_code: str | None = None,
        failure_reason: str | None = None,
        allow_unknown: bool = False,
    ) -> None:
        """
        Pin a generation's state; ``allow_unknown`` admits a state outside the documented four.

        A state the API does not document yet (as a newer API version might add) is for testing how a
        client copes; it counts as non-terminal, so the job keeps its concurrency slot.
        """
        if not isinstance(state, str) or not state:
            raise ValueError(f"a state must be a non-empty string, got {state!r}")
        if state not in STATES and not allow_unknown:
            raise ValueError(
                f"unknown state {state!r}; valid: {', '.join(STATES)} (or pass allow_unknown=True)"
            )
        if failure_code is not None and failure_code not in FAILURE_REASONS:
            raise ValueError(f"unknown failure code {failure_code!r}; valid: {', '.join(FAILURE_REASONS)}")
        with self.lock:
            generation = self.generations.get(generation_id)
            if generation is None:
                raise KeyError(generation_id)
            generation.forced_state = state
            code = failure_code or "generation_failed"
            generation.forced_failure = (code, failure_reason or FAILURE_REASONS[code])

    def expire_output_urls(self) -> None:
        with self.lock:
            self.url_epoch += 1

    def cached_output(self, generation_id: str, name: str, encode: Callable[[], bytes]) -> bytes:
        """The encoded image ``name`` of a generation, encoded once and kept for the most recent ones."""
        key = (generation_id, name)
        with self.lock:
            cached = self.output_cache.get(key)
            if cached is not None:
                self.output_cache.move_to_end(key)
                return cached
        image = encode()
        with self.lock:
            self.output_cache[key] = image
            while len(self.output_cache) > _OUTPUT_CACHE_SIZE:
                self.output_cache.popitem(last=False)
        return image
