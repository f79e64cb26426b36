"""LumaGenerationSensor with a scripted hook: poke outcomes, deferral, soft_fail and timeout."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException, TaskDeferred
from airflow.sdk import PokeReturnValue

from airflow_provider_luma._compat import AirflowSensorTimeout
from airflow_provider_luma.exceptions import LumaAuthenticationError, LumaServerError
from airflow_provider_luma.sensors.luma import LumaGenerationSensor
from airflow_provider_luma.triggers.luma import LumaGenerationTrigger
from tests.fakes import GEN_ID, START, FakeClock, FakeHook, make_context, make_event, make_generation


def _sensor(**kwargs: object) -> LumaGenerationSensor:
    defaults: dict = {"task_id": "wait", "generation_id": GEN_ID, "deferrable": False}
    defaults.update(kwargs)
    return LumaGenerationSensor(**defaults)


def test_poke_running_is_not_done(fake_hook: FakeHook) -> None:
    fake_hook.script([make_generation("processing", generation_id=GEN_ID)])
    assert _sensor().poke(make_context()) is False


def test_poke_completed_returns_and_pushes_the_summary(fake_hook: FakeHook) -> None:
    fake_hook.script([make_generation("completed", generation_id=GEN_ID)])
    context = make_context()
    done = _sensor().poke(context)
    assert isinstance(done, PokeReturnValue) and done.is_done
    assert done.xcom_value["generation_id"] == GEN_ID and done.xcom_value["output_count"] == 1
    assert "url" not in str(done.xcom_value).lower()
    assert context["ti"].xcom == {"generation_id": GEN_ID}


def test_poke_failed_generation_fails_the_task(fake_hook: FakeHook) -> None:
    fake_hook.script([make_generation("failed", generation_id=GEN_ID, failure_code="content_moderated")])
    with pytest.raises(AirflowFailException, match="content_moderated"):
        _sensor().poke(make_context())


def test_poke_tolerates_transient_errors_but_not_auth(fake_hook: FakeHook) -> None:
    fake_hook.script([LumaServerError(502, "Upstream service unavailable", "r")])
    assert _sensor().poke(make_context()) is False
    fake_hook.script([LumaAuthenticationError(401, "Invalid API key", "r")])
    with pytest.raises(AirflowFailException, match="401"):
        _sensor().poke(make_context())


def test_failed_generation_with_soft_fail_is_skipped(fake_hook: FakeHook) -> None:
    fake_hook.script([make_generation("failed", generation_id=GEN_ID, failure_code="generation_failed")])
    with pytest.raises(AirflowSkipException):
        _sensor(soft_fail=True).execute(make_context())


def test_deferrable_with_soft_fail_skips_a_generation_already_failed(fake_hook: FakeHook) -> None:
    fake_hook.script([make_generation("failed", generation_id=GEN_ID, failure_code="content_moderated")])
    with pytest.raises(AirflowSkipException, match="content_moderated"):
        _sensor(deferrable=True, soft_fail=True).execute(make_context())


def test_deferrable_looks_once_then_defers_with_the_sensor_timeout(
    fake_hook: FakeHook, clock: FakeClock
) -> None:
    fake_hook.script([make_generation("queued", generation_id=GEN_ID)])
    with pytest.raises(TaskDeferred) as info:
        _sensor(deferrable=True, timeout=timedelta(minutes=10), poke_interval=3).execute(make_context())
    trigger = info.value.trigger
    assert isinstance(trigger, LumaGenerationTrigger)
    assert trigger.serialize()[1] == {
        "generation_id": GEN_ID,
        "deadline": START + 600,
        "luma_conn_id": "luma_default",
        "first_poll_at": START + 3,
        "poll_interval": 3,
    }
    assert info.value.timeout == timedelta(seconds=660)
    assert len(fake_hook.get_calls) == 1


def test_deferrable_already_completed_does_not_defer(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.script([make_generation("completed", generation_id=GEN_ID)])
    result = _sensor(deferrable=True).execute(make_context())
    assert result["state"] == "completed"


def test_execute_complete_success() -> None:
    context = make_context()
    assert (
        _sensor().execute_complete(context, make_event("success", retryable=True))["generation_id"] == GEN_ID
    )
    assert context["ti"].xcom == {"generation_id": GEN_ID}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (make_event("timeout", retryable=True, state="processing"), AirflowSensorTimeout),
        (
            make_event("failed", retryable=True, state="failed", failure_code="generation_failed"),
            AirflowFailException,
        ),
        (
            {"status": "error", "generation_id": GEN_ID, "message": "401", "retryable": False},
            AirflowFailException,
        ),
        (None, Exception),
    ],
)
def test_execute_complete_errors(event: dict | None, expected: type) -> None:
    with pytest.raises(expected):
        _sensor().execute_complete(make_context(), event)


@pytest.mark.parametrize(
    "event",
    [
        make_event("timeout", retryable=True, state="processing"),
        make_event("failed", retryable=True, state="failed"),
    ],
)
def test_soft_fail_skips_after_deferral(event: dict) -> None:
    """Airflow's resume path applies soft_fail to what execute_complete raises."""
    sensor = _sensor(soft_fail=True)
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution("execute_complete", {"event": event}, make_context())


def test_timeout_in_worker_mode_is_a_sensor_timeout(fake_hook: FakeHook) -> None:
    fake_hook.script([make_generation("processing", generation_id=GEN_ID)])
    sensor = _sensor(timeout=0, poke_interval=0)
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(make_context())
    with pytest.raises(AirflowSkipException):
        _sensor(timeout=0, poke_interval=0, soft_fail=True).execute(make_context())


def test_poke_interval_defaults_to_the_luma_config_section(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _sensor().poke_interval == 2.0
    monkeypatch.setenv("AIRFLOW__LUMA__POLL_INTERVAL", "4")
    assert (_sensor().poke_interval, _sensor(poke_interval=1).poke_interval) == (4.0, 1.0)


def test_every_poke_of_one_execution_shares_one_hook(fake_hook: FakeHook, monkeypatch) -> None:
    """One connection lookup and one pooled client for the whole wait, closed when it ends."""
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # BaseSensorOperator's own wait between pokes
    fake_hook.script(
        [make_generation("processing", generation_id=GEN_ID)] * 3 + [make_generation("completed")]
    )
    _sensor(poke_interval=0.01).execute(make_context())
    assert len(fake_hook.get_calls) == 4
    assert len(fake_hook.init_kwargs) == 1
    assert fake_hook.closed == 1


def test_each_poke_is_bounded_by_the_sensor_timeout(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.script([make_generation("completed", generation_id=GEN_ID)])
    _sensor(timeout=300).execute(make_context())
    assert fake_hook.get_deadlines == [START + 300]


@pytest.mark.parametrize(
    ("options", "error", "outcome"),
    [
        ({"never_fail": True}, LumaAuthenticationError(401, "Invalid API key", "r"), AirflowSkipException),
        ({"never_fail": True}, RuntimeError("the secrets backend is down"), AirflowSkipException),
        ({"silent_fail": True}, RuntimeError("the secrets backend is down"), TaskDeferred),
        ({}, RuntimeError("the secrets backend is down"), RuntimeError),
    ],
    ids=["never_fail-final-error", "never_fail-other-error", "silent_fail-other-error", "plain"],
)
def test_the_first_look_of_a_deferrable_sensor_follows_the_sensor_options(
    fake_hook: FakeHook, clock: FakeClock, options: dict, error: Exception, outcome: type
) -> None:
    fake_hook.script([error])
    with pytest.raises(outcome):
        _sensor(deferrable=True, **options).execute(make_context())


def test_an_event_about_another_generation_is_not_the_sensors_success(clock: FakeClock) -> None:
    event = make_event("success")
    event["generation_id"] = event["generation"]["generation_id"] = "0b5a4e8c-1d7a-4c36-9f7e-2a6b0d9e1f23"
    with pytest.raises(AirflowException, match=f"waits for {GEN_ID}"):
        _sensor().execute_complete(make_context(), event)
