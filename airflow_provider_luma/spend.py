"""
What a DAG run has spent on Luma, and the guard that keeps a run under its cap.

Each generate task instance publishes, as the XCom ``luma_spend``, every submission it made in any of
its tries: the one it is about (``reserved`` while its POST is unanswered or its fate unknown,
``submitted`` once Luma named the generation) and those it abandoned for a new one (the request
changed, ``resubmit_on_retry``, a clear after a failure). The write-ahead submission record
(:mod:`airflow_provider_luma._submission`) is the source: it keeps the list across tries, and Airflow
clears a task's XComs when a new try starts, so each try publishes the list again before it checks
the budget. Every figure is the published list price (:func:`~airflow_provider_luma.models.
estimate_cost_usd`): Luma refunds some failures, which the estimate (and the cap) still count. A
submission Luma publishes no price for (``type="layering"``) is kept with no figure (``None``):
it is counted as ``unpriced``, never summed as a guess, and a task under a cap may not make one.

The guard (:class:`RunBudget`) reserves before it checks: the task's own reservation is published
(the write-ahead record), then the run's spend is read, and the POST goes out only if everything
visible, its own reservation included, is within the cap. Two tasks racing cannot both miss each
other (each reads after its own write), so the cap is never passed by tasks racing; the price is
that a race near the cap may stop both. A task that would fit once a concurrent reservation
resolves waits for it, the earliest reservation going first, for a few seconds before giving up.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_luma.exceptions import LumaRunBudgetExceededError, LumaRunBudgetUnpricedError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

#: The XCom key of a task instance's :class:`TaskSpend`.
SPEND_XCOM_KEY = "luma_spend"
RESERVED, SUBMITTED, ABANDONED = "reserved", "submitted", "abandoned"
#: How long (rounds of about half a second) a task waits for concurrent reservations to resolve.
CONTENDED_ROUNDS = 20
#: Sums of prices are compared with a cap given in cents: a rounding error must not refuse a task.
_EPSILON_USD = 1e-9


@dataclass(frozen=True)
class SpendEntry:
    """
    One submission a task instance made (or is making), priced.

    :param request_id: the POST's ``X-Request-Id``.
    :param generation_id: the generation Luma named; ``None`` while unanswered or of unknown fate.
    :param model: the model asked for.
    :param estimated_cost_usd: its list price; ``None`` when Luma publishes none (a layering job).
    :param status: ``reserved``, ``submitted`` or ``abandoned``.
    :param reserved_at: epoch seconds of the reservation; the earliest goes first in a race.
    :param type: the generation type asked for (``""`` when published before the type was kept),
        which names what has no price.
    """

    request_id: str
    generation_id: str | None
    model: str
    estimated_cost_usd: float | None
    status: str
    reserved_at: float = 0.0
    type: str = ""

    @classmethod
    def from_json(cls, value: Any) -> SpendEntry | None:
        """An entry as published (``None`` for anything that is not one); a null cost is unpriced."""
        if not isinstance(value, dict) or "estimated_cost_usd" not in value:
            return None
        cost = value["estimated_cost_usd"]
        if cost is not None and (not isinstance(cost, (int, float)) or isinstance(cost, bool)):
            return None
        return cls(
            request_id=str(value.get("request_id") or ""),
            generation_id=value.get("generation_id") or None,
            model=str(value.get("model") or ""),
            estimated_cost_usd=None if cost is None else float(cost),
            status=str(value.get("status") or RESERVED),
            reserved_at=float(value.get("reserved_at") or 0.0),
            type=str(value.get("type") or ""),
        )

    @property
    def priced(self) -> bool:
        return self.estimated_cost_usd is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TaskSpend:
    """
    What one task instance has submitted in this run, in all its tries: its ``luma_spend`` XCom.

    :param task_id: the task.
    :param map_index: its map index (-1 when not mapped).
    :param entries: its submissions.
    """

    task_id: str
    map_index: int
    entries: tuple[SpendEntry, ...]

    @classmethod
    def from_json(cls, value: Any) -> TaskSpend | None:
        if not isinstance(value, dict) or not isinstance(value.get("entries"), list):
            return None
        entries = (SpendEntry.from_json(entry) for entry in value["entries"])
        return cls(
            task_id=str(value.get("task_id") or ""),
            map_index=int(value.get("map_index", -1)),
            entries=tuple(entry for entry in entries if entry is not None),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "map_index": self.map_index,
            "entries": [entry.to_json() for entry in self.entries],
        }

    @property
    def label(self) -> str:
        """``task_id`` or ``task_id[map_index]``, as the UI names a task instance."""
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


def luma_task_ids(dag: Any) -> list[str]:
    """The ids of the DAG's generate tasks, mapped or not (the tasks that can spend)."""
    from airflow_provider_luma.operators.generate import LumaGenerateImageOperator

    def spends(task: Any) -> bool:
        operator_class = getattr(task, "operator_class", None)  # a mapped task's
        return isinstance(task, LumaGenerateImageOperator) or (
            isinstance(operator_class, type) and issubclass(operator_class, LumaGenerateImageOperator)
        )

    return [task_id for task_id, task in dag.task_dict.items() if spends(task)]


def read_run_spend(ti: Any, task_ids: Sequence[str], *, map_index: int | None = None) -> list[TaskSpend]:
    """Every published :class:`TaskSpend` of ``task_ids`` in ``ti``'s DAG run: all map indexes, or one."""
    if not task_ids:
        return []
    indexes = {} if map_index is None else {"map_indexes": [map_index]}
    values = ti.xcom_pull(task_ids=list(task_ids), key=SPEND_XCOM_KEY, **indexes)
    spends = (TaskSpend.from_json(value) for value in (values or ()))
    return [spend for spend in spends if spend is not None]


def total_usd(entries: Iterable[SpendEntry]) -> float:
    """The sum of the priced entries (an unpriced one adds nothing it could be known to cost)."""
    return round(
        sum(entry.estimated_cost_usd for entry in entries if entry.estimated_cost_usd is not None), 6
    )


def _unpriced_what(entry: SpendEntry) -> str:
    return f"type {entry.type!r}" if entry.type else "this request"


def spend_report(spends: Sequence[TaskSpend]) -> dict[str, Any]:
    """
    What a run spent: the total, per task, per model, and how many submissions were abandoned or of
    unknown fate (each counted at its list price).

    Submissions without a published price (layering jobs) are in ``submissions`` but in none of the
    sums: ``unpriced`` counts them, ``unpriced_by_task`` says whose they are, and ``note`` says that
    the figures leave them out (``None`` when every submission is priced).
    """
    entries = [entry for spend in spends for entry in spend.entries]
    by_task: dict[str, float] = {}
    unpriced_by_task: dict[str, int] = {}
    by_model: dict[str, float] = {}
    for spend in spends:
        for entry in spend.entries:
            cost = entry.estimated_cost_usd
            if cost is None:
                unpriced_by_task[spend.task_id] = unpriced_by_task.get(spend.task_id, 0) + 1
                continue
            by_task[spend.task_id] = round(by_task.get(spend.task_id, 0.0) + cost, 6)
            by_model[entry.model] = round(by_model.get(entry.model, 0.0) + cost, 6)
    unpriced = [entry for entry in entries if not entry.priced]
    note = None
    if unpriced:
        kinds = ", ".join(sorted({_unpriced_what(entry) for entry in unpriced}))
        note = (
            f"{len(unpriced)} submission(s) have no published price ({kinds}): estimated_cost_usd, "
            "by_task and by_model leave them out, so the run cost more than they say"
        )
    return {
        "estimated_cost_usd": total_usd(entries),
        "submissions": len(entries),
        "abandoned": sum(1 for entry in entries if entry.status == ABANDONED),
        "fate_unknown": sum(1 for entry in entries if entry.generation_id is None),
        "unpriced": len(unpriced),
        "by_task": dict(sorted(by_task.items())),
        "by_model": dict(sorted(by_model.items())),
        "unpriced_by_task": dict(sorted(unpriced_by_task.items())),
        "note": note,
    }


class RunBudget:
    """
    The run-wide cap one task checks before its POST.

    :param cap_usd: the most the run may spend, in USD (estimated list prices).
    :param read: reads the run's published spend (:func:`read_run_spend`), this task's included.
    :param task_label: names this task instance in the refusal.
    :param log: the task's logger.
    :param sleep: waits between rounds (tests pass a fake).
    :param jitter: a number in ``[0, 1)`` per round, so that racing tasks do not keep meeting.
    """

    def __init__(
        self,
        cap_usd: float,
        read: Callable[[], list[TaskSpend]],
        *,
        task_label: str,
        log: Any,
        sleep: Callable[[float], object] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.cap_usd = cap_usd
        self._read = read
        self._task_label = task_label
        self._log = log
        self._sleep = sleep
        self._jitter = jitter

    def priced_cost(self, mine: SpendEntry) -> float:
        """``mine``'s list price; :class:`LumaRunBudgetUnpricedError` when Luma publishes none."""
        if mine.estimated_cost_usd is None:
            raise LumaRunBudgetUnpricedError(
                cap_usd=self.cap_usd, task_label=self._task_label, what=_unpriced_what(mine)
            )
        return mine.estimated_cost_usd

    def admit(self, mine: SpendEntry, *, withdraw: Callable[[], None], reserve: Callable[[], None]) -> None:
        """
        Return when ``mine`` (already published as reserved) fits under the cap; raise when it does not.

        ``withdraw`` and ``reserve`` take the reservation back and publish it again: a task that is
        not the earliest of several racing reservations steps back while it waits, so that the
        earliest can go. On a refusal the reservation is left for the caller to withdraw.

        A request without a published price is refused at once: no figure can be checked against
        the cap. Other tasks' unpriced submissions (made without a cap) add nothing to the sum; the
        cap then holds for the priced spend only, which is logged.
        """
        cost = self.priced_cost(mine)
        for waited in range(CONTENDED_ROUNDS + 1):
            others = [
                entry
                for spend in self._read()
                for entry in spend.entries
                if entry.request_id != mine.request_id
            ]
            if waited == 0:
                self._warn_of_unpriced(others)
            spent = total_usd(others)
            if spent + cost <= self.cap_usd + _EPSILON_USD:
                return
            racing = [entry for entry in others if entry.status == RESERVED]
            settled = spent - total_usd(racing)
            if not racing or settled + cost > self.cap_usd + _EPSILON_USD:
                raise self._refusal(cost, spent, len(others))
            if waited == CONTENDED_ROUNDS:
                break  # a last look after the last wait, then the refusal
            first = min([*racing, mine], key=lambda entry: (entry.reserved_at, entry.request_id))
            self._log.info(
                "Waiting for %d concurrent Luma submission(s) of this run to resolve: with them the run "
                "would pass its cap of %.4f USD",
                len(racing),
                self.cap_usd,
            )
            if first is not mine:
                withdraw()
                self._sleep(0.25 + 0.75 * self._jitter())
                reserve()
            else:
                self._sleep(0.25 + 0.75 * self._jitter())
        raise self._refusal(cost, spent, len(others), contended=True)

    def _warn_of_unpriced(self, others: Sequence[SpendEntry]) -> None:
        unpriced = sum(1 for entry in others if not entry.priced)
        if unpriced:
            self._log.warning(
                "This run has %d Luma submission(s) with no published price (made by tasks without a "
                "cap): the cap of %.4f USD counts only the priced ones",
                unpriced,
                self.cap_usd,
            )

    def _refusal(
        self, cost: float, spent: float, submissions: int, *, contended: bool = False
    ) -> LumaRunBudgetExceededError:
        return LumaRunBudgetExceededError(
            cap_usd=self.cap_usd,
            spent_usd=spent,
            submissions=submissions,
            task_label=self._task_label,
            cost_usd=cost,
            contended=contended,
        )
