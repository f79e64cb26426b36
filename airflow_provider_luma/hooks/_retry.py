"""
The one retry policy for every call the hook makes, synchronous or asynchronous.

GET and POST differ in one respect only: whether a second attempt could do harm. A GET can be
repeated after any transient fault. A POST creates a paid generation and the API has no
idempotency key, so it is repeated only when the answer proves nothing was queued (429, 502, 503)
or when the request never left (connection refused, connect or pool timeout). Any other fault after
sending leaves its fate unknown and raises :class:`LumaSubmissionUnknownError` at once.

The policy decides; two tiny loops (:func:`run_sync`, :func:`run_async`) apply it with an injected
sleep function, so tests never sleep for real.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from airflow_provider_luma.exceptions import (
    LumaSubmissionUnknownError,
    LumaTransportError,
    parse_retry_after,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

#: Statuses documented as "nothing was queued": the only answers after which a POST may be repeated.
POST_RETRYABLE_STATUSES = frozenset({429, 502, 503})
#: Transport faults raised before any byte of the request was sent.
NOTHING_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)


class WarningLogger(Protocol):
    """What the policy needs of a logger (the stdlib's and Airflow's both fit)."""

    def warning(self, msg: str, /, *args: Any) -> object: ...


def is_retryable_status(method: str, status_code: int) -> bool:
    """Whether an error status may be retried for this method (the GET and POST rules side by side)."""
    if method == "POST":
        return status_code in POST_RETRYABLE_STATUSES
    return status_code in (408, 429) or status_code >= 500


@dataclass(frozen=True)
class RetryPolicy:
    """
    How often and how long to retry one logical call.

    :param max_retries: retries after the first attempt, whatever their cause.
    :param max_rate_limit_wait: total seconds one call may spend waiting because the server said so
        (``Retry-After`` / ``X-RateLimit-Reset``, chiefly on a 429); a wait beyond it is not started
        and the mapped error (``LumaRateLimitError`` for a 429) is raised instead.
    :param initial_backoff: the first wait when the server gives no hint, doubled on each retry.
    :param max_backoff: the cap of that doubling.
    :param random: a source of uniform [0, 1) numbers for the jitter (injectable for tests).
    """

    max_retries: int = 5
    max_rate_limit_wait: float = 120.0
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def backoff(self, retry_number: int) -> float:
        """Exponential backoff with bounded jitter: between half and all of the nominal delay."""
        nominal = min(self.max_backoff, self.initial_backoff * 2**retry_number)
        return nominal * (0.5 + 0.5 * self.random())

    def start(self, method: str, label: str, request_id: str, logger: WarningLogger) -> RetryState:
        """The bookkeeping for one logical call; ``label`` is what the log shows (never a presigned URL)."""
        return RetryState(self, method, label, request_id, logger)


class RetryState:
    """
    Retries of one logical call: every attempt shares the same ``X-Request-Id``.

    :param policy: the limits.
    :param method: the HTTP method, which selects the GET or the POST rules.
    :param label: the path to show in logs.
    :param request_id: the id sent with every attempt.
    :param logger: where each retry is logged at WARNING.
    """

    def __init__(
        self, policy: RetryPolicy, method: str, label: str, request_id: str, logger: WarningLogger
    ) -> None:
        self.policy = policy
        self.method = method
        self.label = label
        self.request_id = request_id
        self.logger = logger
        self.retries = 0
        self.server_wait = 0.0

    def after_response(self, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again, or ``None`` when this response is the answer."""
        if self.retries >= self.policy.max_retries or not is_retryable_status(
            self.method, response.status_code
        ):
            return None
        asked = parse_retry_after(response.headers)
        if asked is None:
            wait = self.policy.backoff(self.retries)
        else:
            if self.server_wait + asked > self.policy.max_rate_limit_wait:
                return None
            self.server_wait += asked
            # A little jitter on top of the server's wait, so many tasks turned away together do not
            # all come back in the same second.
            wait = asked + min(1.0, 0.1 * asked) * self.policy.random()
        return self._retry(wait, f"HTTP {response.status_code}")

    def after_error(self, error: httpx.RequestError) -> float:
        """
        Seconds to wait before trying again; raises the final error when the call must stop.

        Any ``httpx.RequestError`` comes here, not only transport errors: a body that cannot be
        decoded is as much a lost answer as a dropped connection.
        """
        cause = type(error).__name__
        if self.method == "POST" and not isinstance(error, NOTHING_SENT_ERRORS):
            raise LumaSubmissionUnknownError(self.request_id, cause) from error
        if self.retries >= self.policy.max_retries:
            raise LumaTransportError(
                f"{self.method} {self.label} failed after {self.retries + 1} attempt(s): {cause}: {error}"
                f" (request id {self.request_id})",
                request_id=self.request_id,
            ) from error
        return self._retry(self.policy.backoff(self.retries), cause)

    def _retry(self, wait: float, reason: str) -> float:
        self.retries += 1
        self.logger.warning(
            "Luma %s %s: retry %s/%s in %.2fs after %s (request id %s)",
            self.method,
            self.label,
            self.retries,
            self.policy.max_retries,
            wait,
            reason,
            self.request_id,
        )
        return wait


def run_sync(
    send: Callable[[], httpx.Response], state: RetryState, sleep: Callable[[float], object]
) -> httpx.Response:
    """Send until the policy accepts the answer; responses that are retried are closed first."""
    while True:
        try:
            response = send()
        except httpx.RequestError as error:
            wait = state.after_error(error)
        else:
            retry = state.after_response(response)
            if retry is None:
                return response
            response.close()
            wait = retry
        sleep(wait)


async def run_async(
    send: Callable[[], Awaitable[httpx.Response]],
    state: RetryState,
    sleep: Callable[[float], Awaitable[object]],
) -> httpx.Response:
    """The asynchronous twin of :func:`run_sync`, with the same policy."""
    while True:
        try:
            response = await send()
        except httpx.RequestError as error:
            wait = state.after_error(error)
        else:
            retry = state.after_response(response)
            if retry is None:
                return response
            await response.aclose()
            wait = retry
        await sleep(wait)
