"""The triggerer's side of a generation: GET it until it ends, then report once."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_luma import polling
from airflow_provider_luma._compat import within
from airflow_provider_luma._offloop import BuiltOnce

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import ModuleType


def _import_hook_module() -> ModuleType:
    return importlib.import_module("airflow_provider_luma.hooks.luma")


#: The hook's module is imported by the first trigger to run, in a thread: it brings httpx's client
#: and aiohttp (about a quarter of a second), which on the triggerer's loop would stall every wait.
_HOOK_MODULE = BuiltOnce(_import_hook_module)


class LumaGenerationTrigger(BaseTrigger):
    """
    Wait for a submitted generation without holding a worker slot.

    It only GETs (the operator submits on the worker), so two copies running at once after a
    triggerer fail-over are harmless, and yields exactly one event, whose payload is
    :meth:`~airflow_provider_luma.polling.WaitOutcome.payload`: ``status`` (``success``, ``failed``,
    ``timeout`` or ``error``), ``generation_id``, ``message``, ``generation`` (the log-safe summary of
    the last read, no URLs) and ``retryable``. Times are absolute epoch seconds, so a trigger re-created
    after a triggerer restart neither waits its initial delay again nor extends its deadline.

    :param generation_id: the generation to wait for.
    :param luma_conn_id: the Luma connection; the API key is looked up (asynchronously) by the hook,
        never carried in the trigger's kwargs.
    :param deadline: epoch seconds; after a last GET at that time the wait ends in ``timeout``.
    :param first_poll_at: epoch seconds before which no GET is made (the initial wait); ``None``
        polls at once. A time more than one interval past (a trigger re-created by a triggerer
        restart) polls within one interval, at the generation's own offset
        (:meth:`~airflow_provider_luma.polling.PollPlan.overdue_offset`), so that thousands of
        re-created waits do not poll in one turn of the event loop.
    :param poll_interval: seconds between GETs.
    """

    def __init__(
        self,
        generation_id: str,
        deadline: float,
        luma_conn_id: str = "luma_default",
        first_poll_at: float | None = None,
        poll_interval: float = polling.DEFAULT_POLL_INTERVAL,
    ) -> None:
        super().__init__()
        self.generation_id = generation_id
        self.deadline = deadline
        self.luma_conn_id = luma_conn_id
        self.first_poll_at = first_poll_at
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "generation_id": self.generation_id,
                "deadline": self.deadline,
                "luma_conn_id": self.luma_conn_id,
                "first_poll_at": self.first_poll_at,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        plan = polling.PollPlan(
            self.generation_id,
            deadline=self.deadline,
            first_poll_at=self.first_poll_at if self.first_poll_at is not None else polling.now(),
            poll_interval=self.poll_interval,
        )
        try:
            # Every GET is bounded by the deadline already; this bounds the rest (the connection
            # lookup, a secrets backend) so that the event always comes before Airflow's deferral
            # timeout (deadline + DEFERRAL_TIMEOUT_MARGIN) cancels the trigger unheard.
            budget = max(0.0, plan.deadline - polling.now()) + polling.TRIGGER_GRACE
            outcome = await within(self._wait(plan), budget)
        except TimeoutError:
            outcome = polling.WaitOutcome(
                polling.TIMEOUT,
                self.generation_id,
                f"Generation {self.generation_id}: the wait did not end by its deadline "
                f"(+{polling.TRIGGER_GRACE:.0f}s); the API has no cancel, so it may still finish and be "
                "billed.",
                plan.last_seen,
                retryable=True,
            )
        except Exception as error:
            # Whatever else went wrong (a missing connection, a secrets backend down), the task must
            # hear of it through the one event, not wait for the deferral's timeout.
            outcome = polling.WaitOutcome(
                polling.ERROR,
                self.generation_id,
                f"Polling generation {self.generation_id} failed: {type(error).__name__}: {error}",
                retryable=True,
            )
        log_method = self.log.info if outcome.status == polling.SUCCESS else self.log.warning
        log_method("%s", outcome.message)
        yield TriggerEvent(outcome.payload())

    async def _wait(self, plan: polling.PollPlan) -> polling.WaitOutcome:
        hooks = await _HOOK_MODULE.aget()
        # The client is released before the event is yielded: the triggerer may never resume us.
        async with hooks.LumaHook(luma_conn_id=self.luma_conn_id) as hook:
            return await polling.await_generation(hook.aget_generation, plan)
