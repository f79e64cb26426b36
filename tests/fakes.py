"""
Stand-ins shared by the trigger, sensor and generate-operator unit tests (a pytest plugin of the
root conftest, so its fixtures ``clock`` and ``fake_hook`` are everywhere).

The fake hook follows ``LumaHook``'s public interface; the fake clock replaces the time functions
of :mod:`airflow_provider_luma.polling`, so waits take no real time and every sleep is recorded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_luma import polling
from airflow_provider_luma.models import Generation, GenerationOutput, GenerationRequest, GenerationState

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

START = 1_800_000_000.0
GEN_ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"
#: A second generation: what a new submission, or a wrong event, is about.
OTHER_ID = "0b5a4e8c-1d7a-4c36-9f7e-2a6b0d9e1f23"
#: The failure codes Luma documents as worth resubmitting (written out here, not read from the code).
RETRYABLE_CODES = {"generation_failed", "output_not_found", "rate_limited"}


def make_generation(
    state: str = "queued",
    *,
    generation_id: str | None = None,
    failure_code: str | None = None,
    type: str = "image",
) -> Generation:
    completed = state == "completed"
    return Generation(
        id=generation_id or str(uuid.uuid4()),
        state=GenerationState(state),
        model="uni-1",
        type=type,
        created_at="2026-04-08T12:00:00Z",
        output=(GenerationOutput("image", "https://storage.example/out.png?X-Amz-Signature=secret"),)
        if completed
        else (),
        failure_code=failure_code,
        failure_reason=f"reason for {failure_code}" if failure_code else None,
        request_id="req-1",
    )


class FakeClock:
    """Epoch time that moves only when the code under test sleeps."""

    def __init__(self, start: float = START) -> None:
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.time += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def no_blocking_calls() -> Iterator[None]:
    """Any blocking call made on an event loop from the product's code raises ``BlockingError``."""
    from blockbuster import blockbuster_ctx

    # The emulator serves from its own loop in this process: it stands for Luma, not for our code.
    with blockbuster_ctx("airflow_provider_luma", excluded_modules=["airflow_provider_luma.testing"]):
        yield


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(polling, "now", fake.now)
    monkeypatch.setattr(polling, "sleep", fake.sleep)
    monkeypatch.setattr(polling, "asleep", fake.asleep)
    return fake


@dataclass
class FakeHook:
    """
    ``LumaHook``'s public interface, scripted: each GET takes the next item of ``gets`` (a Generation, or an
    exception to raise); the last item repeats. ``clock`` (optional) records when each GET happened.
    """

    gets: list[Any] = field(default_factory=list)
    create_result: Any = None
    clock: FakeClock | None = None
    created: list[GenerationRequest] = field(default_factory=list)
    get_calls: list[str] = field(default_factory=list)
    get_times: list[float] = field(default_factory=list)
    get_deadlines: list[float | None] = field(default_factory=list)
    request_ids: list[str | None] = field(default_factory=list)
    init_kwargs: list[dict[str, Any]] = field(default_factory=list)
    closed: int = 0
    #: What ``LumaHook.submission_may_have_been_sent`` says after an interrupted POST.
    submission_may_have_been_sent: bool = True

    def __call__(self, **kwargs: Any) -> FakeHook:
        """Acts as the class: ``LumaHook(luma_conn_id=...)`` returns this same scripted hook."""
        self.init_kwargs.append(kwargs)
        return self

    def script(self, items: Iterable[Any]) -> None:
        self.gets = list(items)

    def _next(self, generation_id: str) -> Generation:
        self.get_calls.append(generation_id)
        if self.clock is not None:
            self.get_times.append(self.clock.time)
        item = self.gets.pop(0) if len(self.gets) > 1 else self.gets[0]
        if isinstance(item, BaseException):
            raise item
        return item

    def get_generation(self, generation_id: str, *, deadline: float | None = None) -> Generation:
        self.get_deadlines.append(deadline)
        return self._next(generation_id)

    async def aget_generation(self, generation_id: str, *, deadline: float | None = None) -> Generation:
        self.get_deadlines.append(deadline)
        return self._next(generation_id)

    def create_generation(self, request: GenerationRequest, *, request_id: str | None = None) -> Generation:
        self.created.append(request)
        self.request_ids.append(request_id)
        if isinstance(self.create_result, BaseException):
            raise self.create_result
        return self.create_result or make_generation("queued")

    def get_conn(self) -> None:
        """Reads the connection; nothing to read here."""

    def close(self) -> None:
        self.closed += 1

    def __enter__(self) -> FakeHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed += 1

    async def __aenter__(self) -> FakeHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed += 1


@pytest.fixture
def fake_hook(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> FakeHook:
    """Replace ``LumaHook`` where the product imports it (lazily, from ``hooks.luma``)."""
    import airflow_provider_luma.hooks.luma as module

    hook = FakeHook(clock=clock)
    monkeypatch.setattr(module, "LumaHook", hook)
    return hook


def _assert_json_value(value: Any) -> None:
    """What the SDK's ``SetTaskStateStore`` accepts (pydantic's ``JsonValue``): no tuples, sets or objects."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), key
            _assert_json_value(item)
    elif isinstance(value, list):
        for item in value:
            _assert_json_value(item)
    else:
        assert value is None or isinstance(value, (str, int, float, bool)), f"not a JSON value: {value!r}"


class FakeTaskStateStore:
    """Airflow 3.3's task_state_store accessor, in memory, recording retentions."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})
        self.retentions: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        assert value is not None
        _assert_json_value(value)
        self.values[key] = value
        self.retentions[key] = retention


class FailingTaskStateStore(FakeTaskStateStore):
    """
    A store whose writes fail, as the supervisor's does when the API server cannot be reached.

    :param fail_after: how many writes succeed first.
    """

    def __init__(self, values: dict[str, Any] | None = None, *, fail_after: int = 0) -> None:
        super().__init__(values)
        self.writes_left = fail_after

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        if self.writes_left <= 0:
            raise RuntimeError("the API server did not answer")
        self.writes_left -= 1
        super().set(key, value, retention=retention)


class FakeTI:
    """
    The task instance attributes the operators read. ``max_tries`` rises only with a clear, as in
    Airflow (``try_number + retries``); ``clear()`` does that.
    """

    def __init__(self, try_number: int = 1, map_index: int = -1, max_tries: int = 0) -> None:
        self.xcom: dict[str, Any] = {}
        self.dag_id = "marketing"
        self.run_id = "manual__2026-12-02T05:48:47+00:00"
        self.task_id = "generate"
        self.map_index = map_index
        self.try_number = try_number
        self.max_tries = max_tries

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> list[Any]:
        """This task instance's own XComs only (the list form ``xcom_pull(task_ids=[...])`` returns)."""
        ids = [task_ids] if isinstance(task_ids, str) else list(task_ids or [self.task_id])
        value = self.xcom.get(key)
        return [value] if self.task_id in ids and value is not None else []


def make_context(
    store: FakeTaskStateStore | None = None, *, try_number: int = 1, max_tries: int = 0
) -> dict[str, Any]:
    """A context for one try; a try after a person's clear has a larger ``max_tries`` than before."""
    context: dict[str, Any] = {"ti": FakeTI(try_number, max_tries=max_tries)}
    if store is not None:
        context["task_state_store"] = store
    return context


def make_event(status: str, *, retryable: bool = False, **generation: object) -> dict[str, Any]:
    """A trigger event payload for ``GEN_ID``; ``generation`` overrides fields of a completed summary."""
    summary = make_generation("completed", generation_id=GEN_ID).summary()
    summary.update(generation)
    return {
        "status": status,
        "generation_id": GEN_ID,
        "message": "m",
        "generation": summary,
        "retryable": retryable,
    }
