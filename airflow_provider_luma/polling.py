"""
How long to wait for a generation, and what the wait ended with: one set of rules for every waiter.

The operator's worker loop, :class:`~airflow_provider_luma.triggers.luma.LumaGenerationTrigger` and
:class:`~airflow_provider_luma.sensors.luma.LumaGenerationSensor` all follow the same timing, taken
from Luma's own advice (uni-1 p50 is about 30 s: wait about 20 s, then poll every 2 s) and bounded by
an ABSOLUTE deadline in epoch seconds, so a trigger that is restarted on another triggerer keeps the
original deadline instead of starting the clock again.

:class:`PollPlan` holds the decisions without doing any I/O (when to poll next, when to give up,
which errors to ride out); :func:`wait_for_generation` and :func:`await_generation` are its sync and
async drivers. Each wait ends in one :class:`WaitOutcome`, which travels as a trigger event payload
(:meth:`WaitOutcome.payload`) and is turned back into a result or an error by :func:`summary_or_raise`.
Tests control time by patching :func:`now`, :func:`sleep` and :func:`asleep` in this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_provider_luma.exceptions import (
    LumaError,
    LumaGenerationFailedError,
    LumaGenerationTimeoutError,
    LumaRateLimitError,
    LumaWaitError,
)
from airflow_provider_luma.models import Generation, GenerationState, canonical_id, failure_code_is_retryable

log = logging.getLogger(__name__)

#: Seconds between two GETs once the first one is made (Luma's advice: 2 s; GETs are not rate limited).
DEFAULT_POLL_INTERVAL = 2.0
#: Seconds between the submission and the first GET (Luma's advice: about 20 s, uni-1 p50 is ~30 s).
DEFAULT_INITIAL_WAIT = 20.0
#: Seconds the whole wait may take before the task gives up. Generous (Luma's docs suggest 120 s
#: for uni-1 and state no latency SLA) but finite: the job keeps running and billing after we leave.
DEFAULT_TIMEOUT = 15 * 60.0
#: Seconds beyond the deadline that Airflow's deferral timeout allows, as a backstop should the
#: trigger itself never report (its own deadline fires first and yields a ``timeout`` event).
DEFERRAL_TIMEOUT_MARGIN = 60.0
#: Seconds past the deadline after which a trigger gives up on whatever it is awaiting and reports a
#: timeout itself: well inside ``DEFERRAL_TIMEOUT_MARGIN``, so its one event is always heard.
TRIGGER_GRACE = 15.0

#: The timing a deployment may change once, in the ``[luma]`` config section, with its defaults.
_CONFIGURABLE = {"initial_wait": DEFAULT_INITIAL_WAIT, "poll_interval": DEFAULT_POLL_INTERVAL}


def configured_seconds(option: str, value: float | None) -> float:
    """A task's timing: its own ``value``, else the deployment's ``[luma]`` option, else Luma's advice."""
    if value is not None:
        return float(value)
    from airflow_provider_luma._compat import conf

    return conf.getfloat("luma", option, fallback=_CONFIGURABLE[option])


#: Trigger event statuses; exactly one is yielded per wait.
SUCCESS = "success"
FAILED = "failed"
TIMEOUT = "timeout"
ERROR = "error"


class GenerationReader(Protocol):
    """``LumaHook.get_generation``'s shape: one GET, bounded (retries included) by ``deadline``."""

    def __call__(self, generation_id: str, *, deadline: float | None = None) -> Generation: ...


class AsyncGenerationReader(Protocol):
    """``LumaHook.aget_generation``'s shape."""

    async def __call__(self, generation_id: str, *, deadline: float | None = None) -> Generation: ...


def now() -> float:
    """Wall-clock epoch seconds (deadlines travel between machines, so not a monotonic clock)."""
    return time.time()


def sleep(seconds: float) -> None:
    time.sleep(seconds)


async def asleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@dataclass(frozen=True)
class WaitOutcome:
    """
    How a wait ended.

    :param status: ``success``, ``failed``, ``timeout`` or ``error``.
    :param generation_id: the generation waited on.
    :param message: a human-readable sentence for the task log.
    :param generation: the last generation read, as its log-safe :meth:`Generation.summary`.
    :param retryable: whether a new task try may succeed (resubmitting, or waiting again).
    """

    status: str
    generation_id: str
    message: str
    generation: dict[str, Any] | None = None
    retryable: bool = False

    def payload(self) -> dict[str, Any]:
        """The trigger event payload: JSON only, no URLs (``summary()`` drops them)."""
        return {
            "status": self.status,
            "generation_id": self.generation_id,
            "message": self.message,
            "generation": self.generation,
            "retryable": self.retryable,
        }


@dataclass
class PollPlan:
    """
    When to GET a generation next and when to stop, without doing any I/O.

    :param generation_id: the generation to wait for.
    :param deadline: epoch seconds after which the wait ends in ``timeout`` (after one last GET).
    :param first_poll_at: epoch seconds before which no GET is made (the initial wait).
    :param poll_interval: seconds between GETs after the first one.
    """

    generation_id: str
    deadline: float
    first_poll_at: float
    poll_interval: float = DEFAULT_POLL_INTERVAL
    last_seen: dict[str, Any] | None = field(default=None, init=False)
    last_error: str | None = field(default=None, init=False)
    warned_unknown_state: bool = field(default=False, init=False)

    @classmethod
    def starting_now(
        cls,
        generation_id: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        initial_wait: float = DEFAULT_INITIAL_WAIT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> PollPlan:
        """A plan whose clock starts now: deadline ``now + timeout``, first GET ``now + initial_wait``."""
        start = now()
        deadline = start + timeout
        return cls(generation_id, deadline, min(start + initial_wait, deadline), poll_interval)

    def first_delay(self, at: float) -> float:
        """Seconds to wait before the first GET (zero when a restarted waiter is already past it)."""
        return max(0.0, min(self.first_poll_at, self.deadline) - at)

    def overdue_offset(self) -> float:
        """
        Where in one interval this generation's overdue first GET falls: stable, in ``[0, interval)``.

        A triggerer that restarts re-creates every wait at once, all past their first GET: without a
        spread, thousands of GETs (and connection lookups) would run in one turn of the event loop,
        blocking it for seconds. Spread by the generation id, each wait is late by at most one
        interval, and the same wait lands at the same offset on whichever triggerer runs it.
        """
        return zlib.crc32(self.generation_id.encode()) % 1000 / 1000 * self.poll_interval

    def after_poll(
        self, at: float, generation: Generation | None = None, error: LumaError | None = None
    ) -> WaitOutcome | float:
        """
        Decide after one GET: the outcome if the wait is over, else the seconds until the next GET.

        A GET that ran out of the hook's own retries with a retryable error (5xx, transport, 429) is
        ridden out until the deadline; any other error ends the wait at once.
        """
        retry_after: float | None = None
        if generation is not None:
            self.last_seen = generation.summary()
            if generation.state is GenerationState.COMPLETED:
                return WaitOutcome(
                    SUCCESS, generation.id, f"Generation {generation.id} completed.", generation.summary()
                )
            if generation.state is GenerationState.FAILED:
                failure = generation.failure_error()
                return WaitOutcome(
                    FAILED, generation.id, str(failure), generation.summary(), failure.retryable
                )
            if generation.state is GenerationState.UNKNOWN and not self.warned_unknown_state:
                # A state added by a newer API: failing would abandon a job that may still complete
                # (and bill), so wait on it like a running one; once in the log is enough.
                self.warned_unknown_state = True
                log.warning(
                    "Generation %s reports state %r, which this provider does not know: polling on "
                    "until it completes or fails, or until the deadline",
                    generation.id,
                    generation.reported_state,
                )
        elif error is not None:
            if not error.retryable:
                return WaitOutcome(
                    ERROR, self.generation_id, f"Polling generation {self.generation_id} failed: {error}"
                )
            self.last_error = str(error)
            log.warning("Transient error polling generation %s (polling on): %s", self.generation_id, error)
            if isinstance(error, LumaRateLimitError):
                retry_after = error.retry_after
        if at >= self.deadline:
            last_state = self.last_seen["state"] if self.last_seen else None
            message = str(LumaGenerationTimeoutError(self.generation_id, last_state))
            if self.last_error:
                message += f" Last polling error: {self.last_error}"
            return WaitOutcome(TIMEOUT, self.generation_id, message, self.last_seen, retryable=True)
        delay = max(self.poll_interval, retry_after or 0.0)
        # The last GET happens at the deadline itself: the final check before declaring a timeout.
        return min(delay, self.deadline - at)


def wait_for_generation(get: GenerationReader, plan: PollPlan) -> WaitOutcome:
    """
    Block until ``plan`` ends, GETting with ``get`` (the worker's loop).

    Each GET is given the plan's deadline, so a hung or failing API cannot hold the wait past it.
    """
    delay = plan.first_delay(now())
    while True:
        sleep(delay)
        try:
            decision = plan.after_poll(now(), generation=get(plan.generation_id, deadline=plan.deadline))
        except LumaError as error:
            decision = plan.after_poll(now(), error=error)
        if isinstance(decision, WaitOutcome):
            return decision
        delay = decision


async def await_generation(get: AsyncGenerationReader, plan: PollPlan) -> WaitOutcome:
    """
    The same loop as :func:`wait_for_generation`, for the triggerer's event loop.

    A wait more than one interval past its first GET (re-created after a triggerer restart) starts
    at its :meth:`PollPlan.overdue_offset`, never past the deadline; a wait that is merely due (it
    just reached the triggerer) polls at once.
    """
    at = now()
    delay = plan.first_delay(at)
    if at - plan.first_poll_at >= plan.poll_interval:
        delay = min(plan.overdue_offset(), max(0.0, plan.deadline - at))
    while True:
        await asleep(delay)
        try:
            decision = plan.after_poll(
                now(), generation=await get(plan.generation_id, deadline=plan.deadline)
            )
        except LumaError as error:
            decision = plan.after_poll(now(), error=error)
        if isinstance(decision, WaitOutcome):
            return decision
        delay = decision


#: What a success event's summary must hold for the task's result to be built from it.
_SUCCESS_FIELDS = ("generation_id", "state", "model", "type")


def summary_or_raise(
    event: Mapping[str, Any] | None, expected_generation_id: str | None = None
) -> dict[str, Any]:
    """
    The completed generation's summary from an event payload, or the error the event stands for.

    Only a well-formed ``success`` event about ``expected_generation_id`` (the generation this task
    submitted, when given) is a success; anything missing, unknown or about another generation is a
    retryable :class:`LumaWaitError` (the next try reattaches and reads the generation itself).
    """
    if not isinstance(event, Mapping) or not isinstance(event.get("status"), str):
        raise LumaWaitError(f"The wait ended without a readable event ({event!r}).", retryable=True)
    status, generation_id = event["status"], str(event.get("generation_id"))
    if expected_generation_id is not None and canonical_id(generation_id) != canonical_id(
        expected_generation_id
    ):
        raise LumaWaitError(
            f"The wait reported on generation {generation_id}, but this task waits for "
            f"{expected_generation_id}.",
            retryable=True,
        )
    generation = event.get("generation")
    if not isinstance(generation, Mapping):
        generation = {}
    if status == SUCCESS:
        missing = [name for name in _SUCCESS_FIELDS if not isinstance(generation.get(name), str)]
        if missing or generation["generation_id"] != generation_id:
            raise LumaWaitError(
                f"The wait for generation {generation_id} reported success in a malformed event "
                f"(missing or wrong: {', '.join(missing) or 'generation_id'}).",
                retryable=True,
            )
        if generation["state"] == GenerationState.COMPLETED.value:
            return dict(generation)
    if status == FAILED:
        code = generation.get("failure_code")
        raise LumaGenerationFailedError(
            generation_id, code, generation.get("failure_reason"), retryable=failure_code_is_retryable(code)
        )
    if status == TIMEOUT:
        raise LumaGenerationTimeoutError(generation_id, generation.get("state"))
    if status == ERROR:
        raise LumaWaitError(str(event.get("message")), retryable=bool(event.get("retryable")))
    raise LumaWaitError(f"The wait ended with an unknown event ({event!r}).", retryable=True)
