"""
The one retry policy for every call the hook makes, synchronous or asynchronous.

GET and POST differ in one respect only: whether a second attempt could do harm. A GET can be
repeated after any transient fault. A POST creates a paid generation and the API has no
idempotency key, so it is repeated only when the answer proves nothing was queued (the API's own
429, 502 or 503: see :func:`proves_nothing_queued`) or when the request never left (connection
refused, connect or pool timeout, a request h11 refused to write). Any other fault after sending
leaves its fate unknown and raises :class:`LumaSubmissionUnknownError` at once.

A call may carry a deadline (absolute epoch seconds, as the polling loop keeps it): no attempt and no
wait between attempts then runs past it, so a hung API cannot hold a wait beyond its timeout.

The policy decides; two tiny loops (:func:`run_sync`, :func:`run_async`) apply it with an injected
sleep function and clock, so tests never sleep for real.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from airflow_provider_luma._compat import within
from airflow_provider_luma._redaction import redact_secrets
from airflow_provider_luma.exceptions import (
    LumaSubmissionUnknownError,
    LumaTransportError,
    parse_retry_after,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

#: Statuses documented as "nothing was queued": the only answers after which a POST may be repeated
#: (and only when the API itself sent them: :func:`proves_nothing_queued`).
POST_RETRYABLE_STATUSES = frozenset({429, 502, 503})
#: Transport faults raised before any byte of the request was written.
NOTHING_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    # h11 refuses to write a request that breaks HTTP's rules (a header value with a line break or a
    # control character) while building its head, before any byte goes out. Our bodies are fixed-length
    # bytes, so its other complaint (a body longer than its Content-Length) cannot arise half-way.
    httpx.LocalProtocolError,
)
#: Faults that repeat identically on every attempt: retrying them only delays the same error.
_DETERMINISTIC_ERRORS: tuple[type[httpx.TransportError], ...] = (httpx.LocalProtocolError,)
#: Luma's advice for a 502 ("Upstream service unavailable"): try again after 5-10 s.
BAD_GATEWAY_WAIT = (5.0, 10.0)
#: ``RetryPolicy.start``'s default for ``creates``: decided by the method (a POST creates a generation).
BY_METHOD = "<by method>"
#: Seconds granted to the one attempt of a call whose deadline has already passed (the last look a
#: waiter takes at the deadline itself); retries never get time past the deadline.
LAST_LOOK_SECONDS = 1.0


def creates_by_method(method: str, creates: str | None) -> str | None:
    """``creates`` as given, or for :data:`BY_METHOD` what the method creates: a POST, a generation."""
    if creates == BY_METHOD:
        return "generation" if method == "POST" else None
    return creates


class WarningLogger(Protocol):
    """What the policy needs of a logger (the stdlib's and Airflow's both fit)."""

    def warning(self, msg: str, /, *args: Any) -> object: ...


def get_may_be_retried(status_code: int) -> bool:
    """Whether a GET answered with this error status may be sent again (a POST: see below)."""
    return status_code in (408, 429) or status_code >= 500


def is_api_answer(response: httpx.Response) -> bool:
    """
    Whether the Luma API itself sent ``response``, rather than a proxy or load balancer in front of it.

    The API stamps ``X-API-Version`` on every ``/v1`` response, and every error it sends has a JSON
    object body with a ``detail`` (a string, or a framework's list of validation errors). A gateway's
    HTML error page has neither. A streamed response whose body is still unread is judged by the
    header alone (only output downloads stream, and they are GETs).
    """
    if "x-api-version" not in response.headers:
        return False
    if response.is_success:
        return True
    try:
        body = response.json()
    except httpx.ResponseNotRead:
        return True
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("detail"), (str, list))


def proves_nothing_queued(response: httpx.Response) -> bool:
    """
    Whether a POST's error answer proves no generation was queued, so sending it again cannot pay twice.

    Only the API's own 429, 502 and 503 prove it:

    - **502 / 503** must be the API's answer (:func:`is_api_answer`: ``X-API-Version`` and a JSON
      ``detail``). A load balancer's 502/503 page may come *after* the origin accepted the job, its
      201 lost on the way back: it proves nothing, and the POST's fate is unknown.
    - **429** must carry ``X-API-Version``; its body is not required, because the body of the API's
      abuse-ceiling 429 is undocumented. A 429 without the header comes from something in front of
      the API (a CDN's or proxy's own rate limiter) and, by the same rule, proves nothing: its fate is
      unknown rather than "rate limited, try again".
    """
    if response.status_code not in POST_RETRYABLE_STATUSES or "x-api-version" not in response.headers:
        return False
    return response.status_code == 429 or is_api_answer(response)


def is_retryable_response(method: str, response: httpx.Response) -> bool:
    """Whether this answer may be retried: the GET rules look at the status, the POST rules at the proof."""
    if method == "POST":
        return proves_nothing_queued(response)
    return get_may_be_retried(response.status_code)


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

    def bad_gateway_wait(self) -> float:
        """The wait before repeating a POST the API answered 502: Luma advises 5-10 s, jittered in it."""
        low, high = BAD_GATEWAY_WAIT
        return low + (high - low) * self.random()

    def start(
        self,
        method: str,
        label: str,
        request_id: str,
        logger: WarningLogger,
        *,
        deadline: float | None = None,
        clock: Callable[[], float] = time.time,
        creates: str | None = BY_METHOD,
        expects_json: bool = True,
    ) -> RetryState:
        """
        The bookkeeping for one logical call; ``label`` is what the log shows (never a presigned URL).

        :param deadline: epoch seconds (as ``clock`` tells them) past which no attempt or wait may run.
        :param clock: the time source compared with ``deadline``.
        :param creates: what a second attempt could create twice (``generation``, ``file``), which
            selects the POST rules; ``None`` for a call that may be repeated (every GET, PUT and
            DELETE, and a POST that only moves an existing object on). By default a POST creates a
            generation.
        :param expects_json: whether a success must carry a JSON body (the storage's PUT answers none).
        """
        return RetryState(
            self,
            method,
            label,
            request_id,
            logger,
            deadline=deadline,
            clock=clock,
            creates=creates,
            expects_json=expects_json,
        )


class RetryState:
    """
    Retries of one logical call: every attempt shares the same ``X-Request-Id``.

    :param policy: the limits.
    :param method: the HTTP method, which selects the GET or the POST rules.
    :param label: the path to show in logs.
    :param request_id: the id sent with every attempt.
    :param logger: where each retry is logged at WARNING.
    :param deadline: epoch seconds past which no attempt or wait may run (``None``: no deadline).
    :param clock: the time source compared with ``deadline``.
    :param creates: what a second attempt could create twice (the POST rules), or ``None`` (the GET rules).
    :param expects_json: whether a success must carry a JSON body.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        method: str,
        label: str,
        request_id: str,
        logger: WarningLogger,
        *,
        deadline: float | None = None,
        clock: Callable[[], float] = time.time,
        creates: str | None = BY_METHOD,
        expects_json: bool = True,
    ) -> None:
        self.policy = policy
        self.method = method
        self.creates = creates_by_method(method, creates)
        self.expects_json = expects_json
        self.label = label
        self.request_id = request_id
        self.logger = logger
        self.deadline = deadline
        self.clock = clock
        self.retries = 0
        self.attempts = 0
        self.server_wait = 0.0
        self.last_cause = "none"
        #: Whether an attempt is out, or its answer came and was accepted: from the first send on,
        #: until an answer proves nothing was queued and the loop waits to try again.
        self.in_flight = False

    @property
    def rules(self) -> str:
        """Which rules answer "may this be sent again": a creating call's (POST) or a repeatable one's."""
        return "POST" if self.creates is not None else "GET"

    def time_left(self) -> float | None:
        """Seconds until the deadline (negative once past it), or ``None`` without one."""
        return None if self.deadline is None else self.deadline - self.clock()

    def before_attempt(self) -> float | None:
        """
        The seconds the next attempt may take (``None``: no bound); raises when the deadline leaves none.

        The first attempt always runs, with at least :data:`LAST_LOOK_SECONDS`, so a waiter's last look
        at its deadline still happens; a retry runs only while time is left.
        """
        left = self.time_left()
        if left is not None and self.attempts and left <= 0:
            raise self._deadline_error(self.last_cause)
        self.attempts += 1
        if left is None:
            return None
        return left if self.attempts > 1 else max(left, LAST_LOOK_SECONDS)

    def after_response(self, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again, or ``None`` when this response is the answer."""
        if self.retries >= self.policy.max_retries or not is_retryable_response(self.rules, response):
            return None
        asked = parse_retry_after(response.headers)
        if asked is None:
            if self.creates is not None and response.status_code == 502:
                wait = self.policy.bad_gateway_wait()
            else:
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
        decoded (or a success whose body is not JSON, :func:`raise_if_garbled`) is as much a lost
        answer as a dropped connection. The error's own message is redacted
        before it is quoted: h11 quotes a refused header value, which may be the ``Authorization`` one.
        """
        cause = type(error).__name__
        if self.creates is not None and not isinstance(error, NOTHING_SENT_ERRORS):
            raise LumaSubmissionUnknownError(self.request_id, cause, creates=self.creates) from error
        described = f"{cause}: {redact_secrets(str(error))}"
        deterministic = isinstance(error, _DETERMINISTIC_ERRORS)
        if self.retries >= self.policy.max_retries or deterministic:
            raise LumaTransportError(
                f"{self.method} {self.label} failed after {self.retries + 1} attempt(s): {described}"
                f" (request id {self.request_id})",
                request_id=self.request_id,
                retryable=not deterministic,
            ) from error
        return self._retry(self.policy.backoff(self.retries), described)

    def after_unexpected(self, error: Exception) -> None:
        """
        A non-httpx exception escaped the send (a bug in a transport layer): the POST may have gone out.

        A POST's fate is then unknown, never a retry and never a generic error a caller could take for
        a transient one; any other method lets the error propagate as it is. Exceptions that are not
        ``Exception`` (cancellation, a task timeout, Ctrl-C) never come here: they pass through.
        """
        if self.creates is not None:
            raise LumaSubmissionUnknownError(
                self.request_id, f"{type(error).__name__} raised while sending", creates=self.creates
            ) from error

    def _retry(self, wait: float, reason: str) -> float:
        self.last_cause = reason
        left = self.time_left()
        if left is not None:
            if left <= 0:
                raise self._deadline_error(reason)
            # Never wait past the deadline: the next attempt (if any time is left) is its last chance.
            wait = min(wait, left)
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

    def _deadline_error(self, reason: str) -> LumaTransportError:
        return LumaTransportError(
            f"{self.method} {self.label}: the deadline passed after {self.attempts} attempt(s); "
            f"last cause: {reason} (request id {self.request_id})",
            request_id=self.request_id,
        )


def raise_if_garbled(response: httpx.Response) -> None:
    """
    Raise ``httpx.DecodingError`` for a success whose body was read but is not JSON.

    Every API success but a 204 (a DELETE's empty answer) is a JSON object; a body cut short on the
    way (or a captive portal's page answered 200) is a damaged answer, so the policy treats it like
    any lost answer: a GET is asked again, a POST's fate is unknown. A streamed body (an output
    download) is not read here.
    """
    if not response.is_success or not response.is_stream_consumed or response.status_code == 204:
        return
    try:
        response.json()
    except ValueError:
        raise httpx.DecodingError(
            f"the {response.status_code} answer's body is not JSON", request=response.request
        ) from None


def run_sync(
    send: Callable[[float | None], httpx.Response],
    state: RetryState,
    sleep: Callable[[float], object],
) -> httpx.Response:
    """
    Send until the policy accepts the answer; responses that are retried are closed first.

    ``send`` gets the seconds its attempt may take (``None``: the client's own timeouts).
    """
    while True:
        budget = state.before_attempt()
        state.in_flight = True
        try:
            response = send(budget)
            if state.expects_json:
                raise_if_garbled(response)
        except httpx.RequestError as error:
            wait = state.after_error(error)
        except Exception as error:
            state.after_unexpected(error)
            raise
        else:
            retry = state.after_response(response)
            if retry is None:
                return response
            response.close()
            wait = retry
        # Whatever interrupts the wait (a task timeout) interrupts no request.
        state.in_flight = False
        sleep(wait)


async def run_async(
    send: Callable[[float | None], Awaitable[httpx.Response]],
    state: RetryState,
    sleep: Callable[[float], Awaitable[object]],
) -> httpx.Response:
    """
    The asynchronous twin of :func:`run_sync`, with the same policy.

    An attempt with a budget is also bounded as a whole: httpx's timeouts bound each read, so a server
    trickling bytes could otherwise hold one attempt far past the deadline.
    """
    while True:
        budget = state.before_attempt()
        state.in_flight = True
        try:
            response = await _bounded(send(budget), budget)
            if state.expects_json:
                raise_if_garbled(response)
        except httpx.RequestError as error:
            wait = state.after_error(error)
        except Exception as error:
            state.after_unexpected(error)
            raise
        else:
            retry = state.after_response(response)
            if retry is None:
                return response
            await response.aclose()
            wait = retry
        state.in_flight = False
        await sleep(wait)


async def _bounded(attempt: Awaitable[httpx.Response], budget: float | None) -> httpx.Response:
    if budget is None:
        return await attempt
    try:
        return await within(attempt, budget)
    except TimeoutError:
        # Only the bound's own timeout lands here (cancellation is not a TimeoutError): report it as the
        # read timeout it is, so the policy treats it like any other.
        raise httpx.ReadTimeout(f"no complete answer within {budget:.2f}s") from None
