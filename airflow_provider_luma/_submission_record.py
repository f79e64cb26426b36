"""
What one submission leaves in ``task_state_store``, and the request id that names a try's POST.

:class:`SubmissionRecord` is the record :mod:`airflow_provider_luma._submission` writes ahead of a
POST and replaces with its answer: its fields, its JSON form (what the store keeps, JSON values
only), and what it counts as the run's spend. The decisions made from it (may this try POST, reattach,
or must it refuse) stay in :mod:`._submission`.

One key holds the whole record, so one write records it all (a crash between two writes would make
the next try misread the request). Renaming ``STATE_KEY`` breaks the reattachment of tries in flight.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_luma.spend import ABANDONED, RESERVED, SUBMITTED, SpendEntry

STATE_KEY = "luma_generation"

#: Luma's support matches a charge by the request id; long enough to name the task, short enough for
#: any proxy's header limits.
MAX_REQUEST_ID_LENGTH = 128
_HEADER_UNSAFE = re.compile(r"[^A-Za-z0-9._~-]+")


def request_id_for(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """
    The ``X-Request-Id`` of one try's POST: ``airflow-<dag_id>-<run_id>-<task_id>-<map_index>-<try>``.

    Characters a header or a log search would trip on become ``_``. An id over
    :data:`MAX_REQUEST_ID_LENGTH` keeps its start and its map index and try, with a digest of the
    whole in between, so two long ids still differ.
    """
    names = "-".join(_HEADER_UNSAFE.sub("_", part) for part in (dag_id, run_id, task_id))
    tail = f"{map_index}-{try_number}"
    full = f"airflow-{names}-{tail}"
    if len(full) <= MAX_REQUEST_ID_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:12]
    head = f"airflow-{names}"[: MAX_REQUEST_ID_LENGTH - len(digest) - len(tail) - 2]
    return f"{head}-{digest}-{tail}"


@dataclass(frozen=True)
class SubmissionRecord:
    """
    What one submission left in the store.

    :param request_id: the ``X-Request-Id`` its POST was sent with.
    :param fingerprint: the request's :meth:`~airflow_provider_luma.models.GenerationRequest.fingerprint`.
    :param generation_id: the generation the 201 named; ``None`` before the answer, or after a refusal.
    :param pending: written before the POST and still unanswered: its fate is unknown.
    :param failure_reported: the final failure the task reported after this submission, if any.
    :param reported_max_tries: the task instance's ``max_tries`` when it reported that failure.
    :param model: the model asked for.
    :param estimated_cost_usd: the request's list price; ``None`` when Luma publishes none (layering).
    :param type: the generation type asked for (``None`` in a record written before it was kept).
    :param submitted_try: the try that sent it (a later try reusing its generation did not pay).
    :param reserved_at: epoch seconds the record was written ahead of the POST.
    :param abandoned: the submissions this task instance made before this one and gave up for it,
        as :class:`~airflow_provider_luma.spend.SpendEntry` JSON: they were paid for all the same.
    """

    request_id: str
    fingerprint: str
    generation_id: str | None = None
    pending: bool = False
    failure_reported: str | None = None
    reported_max_tries: int | None = None
    model: str | None = None
    estimated_cost_usd: float | None = None
    type: str | None = None
    submitted_try: int | None = None
    reserved_at: float | None = None
    abandoned: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_json(cls, value: Any) -> SubmissionRecord | None:
        """Read a stored record; the first format (``{generation_id, fingerprint}``) reads too."""
        if not isinstance(value, dict) or not isinstance(value.get("fingerprint"), str):
            return None
        return cls(
            request_id=str(value.get("request_id") or ""),
            fingerprint=value["fingerprint"],
            generation_id=value.get("generation_id") or None,
            pending=bool(value.get("pending")),
            failure_reported=value.get("failure_reported") or None,
            reported_max_tries=value.get("reported_max_tries"),
            model=value.get("model") or None,
            estimated_cost_usd=value.get("estimated_cost_usd"),
            type=value.get("type") or None,
            submitted_try=value.get("submitted_try"),
            reserved_at=value.get("reserved_at"),
            abandoned=tuple(value.get("abandoned") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        """The record as the store keeps it (JSON values only: no tuples)."""
        return {**asdict(self), "abandoned": list(self.abandoned)}

    def current_spend(self, status: str | None = None) -> SpendEntry | None:
        """
        This submission as spend: ``reserved`` while its fate is unknown, ``submitted`` once answered.

        ``None`` when it cost nothing (the API refused it, or it never went out) or is not priced
        (a record written before prices were kept, which also kept no type). A request Luma publishes
        no price for (layering) is spend all the same: an entry without a figure.
        """
        written_before_prices = self.estimated_cost_usd is None and self.type is None
        if written_before_prices or not (self.pending or self.generation_id):
            return None
        return self.as_spend(status or (SUBMITTED if self.generation_id else RESERVED))

    def as_spend(self, status: str) -> SpendEntry:
        """This submission as a spend entry, whatever it cost (a record written ahead is priced)."""
        return SpendEntry(
            request_id=self.request_id,
            generation_id=self.generation_id,
            model=self.model or "",
            estimated_cost_usd=self.estimated_cost_usd,
            status=status,
            reserved_at=self.reserved_at or 0.0,
            type=self.type or "",
        )

    def abandoned_spend(self) -> list[SpendEntry]:
        """The submissions this task instance gave up in earlier tries (paid for all the same)."""
        entries = (SpendEntry.from_json(entry) for entry in self.abandoned)
        return [entry for entry in entries if entry is not None]

    def spend(self) -> list[SpendEntry]:
        """Everything this task instance has paid for, in all its tries: the abandoned, then this one."""
        current = self.current_spend()
        return [*self.abandoned_spend(), *([current] if current is not None else [])]

    def carried_forward(self) -> tuple[dict[str, Any], ...]:
        """What a new submission replacing this one inherits: the abandoned, now with this one."""
        current = self.current_spend(ABANDONED)
        return (*self.abandoned, current.to_json()) if current is not None else self.abandoned
