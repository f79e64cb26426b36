"""LumaGenerateImageOperator with a scripted hook, a fake clock and a fake task_state_store."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from airflow.exceptions import AirflowException, AirflowFailException, TaskDeferred

from airflow_provider_luma._compat import never_expire
from airflow_provider_luma._submission import STATE_KEY
from airflow_provider_luma.exceptions import (
    LumaAuthenticationError,
    LumaGenerationFailedError,
    LumaGenerationTimeoutError,
    LumaInsufficientFundsError,
    LumaInvalidRequestError,
    LumaNotFoundError,
    LumaPayloadTooLargeError,
    LumaPermissionDeniedError,
    LumaRateLimitError,
    LumaRequestValidationError,
    LumaServerError,
    LumaSubmissionUnknownError,
    LumaTransportError,
)
from airflow_provider_luma.models import MAX_IMAGE_BYTES, FailureCode, GenerationRequest
from airflow_provider_luma.operators.generate import LumaGenerateImageOperator
from airflow_provider_luma.triggers.luma import LumaGenerationTrigger
from tests.fakes import (
    GEN_ID,
    OTHER_ID,
    RETRYABLE_CODES,
    START,
    FailingTaskStateStore,
    FakeClock,
    FakeHook,
    FakeTaskStateStore,
    make_context,
    make_event,
    make_generation,
)

#: The X-Request-Id of the first try of tests.fakes.FakeTI's task.
REQUEST_ID = "airflow-marketing-manual__2026-12-02T05_48_47_00_00-generate--1-1"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _operator(**kwargs: object) -> LumaGenerateImageOperator:
    defaults: dict = {"task_id": "generate", "prompt": "a lighthouse at dusk", "deferrable": False}
    defaults.update(kwargs)
    return LumaGenerateImageOperator(**defaults)


def _fingerprint(**kwargs: object) -> str:
    return GenerationRequest.build(**{"prompt": "a lighthouse at dusk", **kwargs}).fingerprint()


# --- validation: at parse when literal, in execute otherwise, never an HTTP call ---------------------


def test_bad_literal_value_fails_at_parse_naming_the_field() -> None:
    # AirflowFailException: a mapped task expanded at run time fails without spending retries.
    with pytest.raises(AirflowFailException, match=r"aspect_ratio.*valid: 1:1") as info:
        _operator(aspect_ratio="4:3")
    assert isinstance(info.value.__cause__, LumaRequestValidationError)
    assert info.value.__cause__.field == "aspect_ratio"


def test_edit_without_source_fails_at_parse() -> None:
    with pytest.raises(AirflowFailException, match="source"):
        _operator(type="image_edit")


def test_storage_source_is_validated_at_parse_without_reading() -> None:
    # A bucket that does not exist: parse must not touch storage.
    _operator(type="image_edit", source="s3://no-such-bucket-for-sure/edit-me.png")
    with pytest.raises(AirflowFailException, match="image_ref"):
        _operator(type="image_edit", source="s3://no-such-bucket/x.png", image_ref=["s3://b/r.png"] * 9)


def test_templated_value_is_validated_in_execute_without_retry_or_http(fake_hook: FakeHook) -> None:
    operator = _operator(aspect_ratio="{{ params.ratio }}")  # no error at parse
    operator.aspect_ratio = "4:3"  # what rendering produced
    with pytest.raises(AirflowFailException) as info:
        operator.execute(make_context(FakeTaskStateStore()))
    assert isinstance(info.value.__cause__, LumaRequestValidationError)
    assert info.value.__cause__.field == "aspect_ratio"
    assert fake_hook.init_kwargs == [] and fake_hook.created == [] and fake_hook.get_calls == []


def test_xcomarg_source_defers_validation() -> None:
    from airflow.sdk import DAG, task

    with DAG("validation_xcomarg", schedule=None):

        @task
        def upstream() -> str:
            return GEN_ID

        operator = LumaGenerateImageOperator(
            task_id="edit", prompt="make it night", type="image_edit", source=upstream(), deferrable=False
        )
    assert operator.source is not None


# --- submission and waiting ------------------------------------------------------------------------


def test_worker_poll_returns_small_result_and_pushes_the_id(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    fake_hook.script(
        [
            make_generation("processing", generation_id=GEN_ID),
            make_generation("completed", generation_id=GEN_ID),
        ]
    )
    store = FakeTaskStateStore()
    context = make_context(store)
    result = _operator(aspect_ratio="16:9").execute(context)

    assert result == {
        "generation_id": GEN_ID,
        "state": "completed",
        "model": "uni-1",
        "type": "image",
        "request_id": REQUEST_ID,  # the submission's, not the last poll's ("req-1")
        "created_at": "2026-04-08T12:00:00Z",
        "output_count": 1,
        "layers": [],
        "estimated_cost_usd": 0.0404,
        "billed_this_try": True,
        "abandoned_generations": [],
        "request": {
            "prompt": "a lighthouse at dusk",
            "type": "image",
            "model": "uni-1",
            "aspect_ratio": "16:9",
        },
        "uploaded_inputs": [],
    }
    assert "X-Amz" not in json.dumps(result)
    assert context["ti"].xcom["generation_id"] == GEN_ID
    [spent] = context["ti"].xcom["luma_spend"]["entries"]
    assert (spent["generation_id"], spent["status"], spent["estimated_cost_usd"]) == (
        GEN_ID,
        "submitted",
        0.0404,
    )
    assert len(fake_hook.created) == 1
    assert fake_hook.request_ids == [REQUEST_ID]
    assert fake_hook.get_times == [START + 20, START + 22]  # same timing as the trigger
    assert fake_hook.get_deadlines == [START + 900] * 2  # each GET is bounded by the wait's deadline
    record = dict(store.values[STATE_KEY])
    assert isinstance(record.pop("reserved_at"), float)
    assert record == {
        "request_id": REQUEST_ID,
        "fingerprint": _fingerprint(aspect_ratio="16:9"),
        "generation_id": GEN_ID,
        "pending": False,
        "failure_reported": None,
        "reported_max_tries": None,
        "model": "uni-1",
        "estimated_cost_usd": 0.0404,
        "type": "image",
        "submitted_try": 1,
        "abandoned": [],
    }
    assert store.retentions[STATE_KEY] is never_expire()


def test_deferrable_defers_with_absolute_times_and_a_backstop(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    store = FakeTaskStateStore()
    operator = _operator(deferrable=True, timeout=timedelta(minutes=5), luma_conn_id="luma_x")
    with pytest.raises(TaskDeferred) as info:
        operator.execute(make_context(store))
    deferred = info.value
    assert isinstance(deferred.trigger, LumaGenerationTrigger)
    assert deferred.method_name == "execute_complete"
    assert deferred.trigger.serialize()[1] == {
        "generation_id": GEN_ID,
        "deadline": START + 300,
        "luma_conn_id": "luma_x",
        "first_poll_at": START + 20,
        "poll_interval": 2.0,
    }
    assert deferred.timeout == timedelta(seconds=360)
    assert deferred.kwargs == {
        "request": GenerationRequest.build(prompt="a lighthouse at dusk").describe(),
        "generation_id": GEN_ID,
        "request_id": REQUEST_ID,
    }
    assert fake_hook.get_calls == []  # the worker never polls when deferring
    assert store.values[STATE_KEY]["generation_id"] == GEN_ID


def test_no_wait_returns_queued_right_after_submit(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    context = make_context(FakeTaskStateStore())
    result = _operator(wait_for_completion=False, deferrable=True).execute(context)
    assert result["state"] == "queued" and result["generation_id"] == GEN_ID
    assert context["ti"].xcom["generation_id"] == GEN_ID
    assert fake_hook.get_calls == []


def test_id_is_stored_before_the_first_poll(fake_hook: FakeHook, clock: FakeClock) -> None:
    """A worker dying during the wait leaves the id behind for the next try."""
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    fake_hook.script([KeyboardInterrupt()])
    store = FakeTaskStateStore()
    with pytest.raises(KeyboardInterrupt):
        _operator().execute(make_context(store))
    assert store.values[STATE_KEY]["generation_id"] == GEN_ID


@pytest.mark.parametrize("code", [code.value for code in FailureCode])
def test_failure_codes_map_to_retry_or_not(fake_hook: FakeHook, clock: FakeClock, code: str) -> None:
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    fake_hook.script([make_generation("failed", generation_id=GEN_ID, failure_code=code)])
    with pytest.raises(Exception) as info:
        _operator().execute(make_context(FakeTaskStateStore()))
    if code in RETRYABLE_CODES:
        assert not isinstance(info.value, AirflowFailException)
        failure = info.value
    else:
        assert isinstance(info.value, AirflowFailException)
        failure = info.value.__cause__
    assert isinstance(failure, LumaGenerationFailedError)
    assert failure.failure_code == code
    assert failure.failure_reason == f"reason for {code}"


def test_deadline_is_a_retryable_timeout(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    fake_hook.script([make_generation("processing", generation_id=GEN_ID)])
    with pytest.raises(LumaGenerationTimeoutError, match="may still finish and be billed"):
        _operator(timeout=30).execute(make_context(FakeTaskStateStore()))
    assert fake_hook.get_times[-1] == START + 30


@pytest.mark.parametrize(
    "error",
    [
        LumaInvalidRequestError(400, "Unknown model: x", "r"),
        LumaAuthenticationError(401, "Invalid API key", "r"),
        LumaInsufficientFundsError(402, "Insufficient credits.", "r"),
        LumaPermissionDeniedError(403, "API client is suspended", "r"),
        LumaPayloadTooLargeError(413, "Image exceeds 50 MB size limit", "r"),
        LumaInvalidRequestError(422, "source: failed to fetch URL", "r"),
    ],
)
def test_non_retryable_submit_errors_fail_without_retry(fake_hook: FakeHook, clock: FakeClock, error) -> None:
    fake_hook.create_result = error
    with pytest.raises(AirflowFailException) as info:
        _operator().execute(make_context(FakeTaskStateStore()))
    assert info.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [
        LumaRateLimitError(429, "Too many concurrent jobs", "r", 60),
        LumaServerError(503, "down", "r"),
        LumaTransportError("connect refused"),
    ],
)
def test_retryable_submit_errors_are_retried_by_airflow(fake_hook: FakeHook, clock: FakeClock, error) -> None:
    fake_hook.create_result = error
    store = FakeTaskStateStore()
    with pytest.raises(type(error)) as info:
        _operator().execute(make_context(store))
    assert not isinstance(info.value, AirflowFailException)
    # The answer proved nothing was queued: the record says so, and the retry may POST.
    assert store.values[STATE_KEY]["pending"] is False and store.values[STATE_KEY]["generation_id"] is None
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    _operator(wait_for_completion=False).execute(make_context(store, try_number=2))
    assert len(fake_hook.created) == 2


def test_unknown_submission_fate_fails_without_retry_and_says_how_to_check(
    fake_hook: FakeHook, clock: FakeClock
) -> None:
    fake_hook.create_result = LumaSubmissionUnknownError("req-42", "read timeout")
    store = FakeTaskStateStore()
    with pytest.raises(AirflowFailException, match="req-42") as info:
        _operator().execute(make_context(store))
    message = str(info.value)
    assert "may be billed" in message and "clear the task" in message
    assert store.values[STATE_KEY]["pending"] is True
    assert store.values[STATE_KEY]["failure_reported"] == "LumaSubmissionUnknownError"


# --- execute_complete: one event in, a result or the right error out ----------------------------------


def test_execute_complete_success(clock: FakeClock) -> None:
    context = make_context()
    described = GenerationRequest.build(prompt="a lighthouse at dusk").describe()
    result = _operator().execute_complete(context, make_event("success"), request=described)
    assert result["generation_id"] == GEN_ID and result["state"] == "completed"
    assert result["request"] == described
    assert context["ti"].xcom == {"generation_id": GEN_ID}


def test_execute_complete_rebuilds_the_request_when_the_kwargs_were_dropped(clock: FakeClock) -> None:
    result = _operator(model="uni-1-max").execute_complete(make_context(), make_event("success"))
    assert result["request"]["model"] == "uni-1-max"
    assert result["estimated_cost_usd"] == 0.1


@pytest.mark.parametrize(
    ("event", "expected", "fail_fast"),
    [
        (
            make_event("failed", state="failed", failure_code="content_moderated"),
            LumaGenerationFailedError,
            True,
        ),
        (
            make_event("failed", state="failed", failure_code="generation_failed"),
            LumaGenerationFailedError,
            False,
        ),
        (make_event("timeout", state="processing"), LumaGenerationTimeoutError, False),
        ({"status": "error", "generation_id": GEN_ID, "message": "HTTP 401", "retryable": False}, None, True),
        (None, None, False),
        ({"status": "exploded"}, None, False),
        (make_event("success", state="processing"), None, False),  # a "success" that is not completed
    ],
)
def test_execute_complete_never_turns_a_bad_event_into_success(
    clock: FakeClock, event: dict | None, expected: type | None, fail_fast: bool
) -> None:
    with pytest.raises(Exception) as info:
        _operator().execute_complete(make_context(), event, request={"model": "uni-1"})
    error = info.value.__cause__ if fail_fast else info.value
    assert isinstance(info.value, AirflowFailException) is fail_fast
    if expected is not None:
        assert isinstance(error, expected)


# --- reattach decision table -------------------------------------------------------------------------


def _store_for(generation_id: str = GEN_ID, **request: object) -> FakeTaskStateStore:
    """A store as the first format left it (``{generation_id, fingerprint}``): it must still reattach."""
    return FakeTaskStateStore(
        {STATE_KEY: {"generation_id": generation_id, "fingerprint": _fingerprint(**request)}}
    )


def test_reattach_running_waits_without_posting(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.script(
        [make_generation("processing", generation_id=GEN_ID)] * 2
        + [make_generation("completed", generation_id=GEN_ID)]
    )
    result = _operator().execute(make_context(_store_for()))
    assert fake_hook.created == []
    assert result["generation_id"] == GEN_ID
    # The reattach GET, then polls every interval (no second initial wait).
    assert fake_hook.get_times == [START, START + 2, START + 4]


def test_reattach_running_deferrable_defers_on_the_same_id(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.script([make_generation("processing", generation_id=GEN_ID)])
    with pytest.raises(TaskDeferred) as info:
        _operator(deferrable=True).execute(make_context(_store_for()))
    assert info.value.trigger.generation_id == GEN_ID
    assert fake_hook.created == []


def test_reattach_completed_reuses_it(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.script([make_generation("completed", generation_id=GEN_ID)])
    context = make_context(_store_for())
    result = _operator(deferrable=True).execute(context)
    assert result["state"] == "completed" and result["generation_id"] == GEN_ID
    assert fake_hook.created == [] and len(fake_hook.get_calls) == 1
    assert context["ti"].xcom["generation_id"] == GEN_ID
    assert result["billed_this_try"] is False


@pytest.mark.parametrize("code", sorted(RETRYABLE_CODES))
def test_reattach_failed_retryable_submits_anew(fake_hook: FakeHook, clock: FakeClock, code: str) -> None:
    fake_hook.create_result = make_generation("queued", generation_id=OTHER_ID)
    fake_hook.script([make_generation("failed", generation_id=GEN_ID, failure_code=code)])
    store = _store_for()
    result = _operator(wait_for_completion=False).execute(make_context(store))
    assert len(fake_hook.created) == 1
    assert result["generation_id"] == OTHER_ID
    assert store.values[STATE_KEY]["generation_id"] == OTHER_ID


@pytest.mark.parametrize("code", sorted({code.value for code in FailureCode} - RETRYABLE_CODES))
def test_reattach_failed_otherwise_fails_without_retry(
    fake_hook: FakeHook, clock: FakeClock, code: str
) -> None:
    fake_hook.script([make_generation("failed", generation_id=GEN_ID, failure_code=code)])
    with pytest.raises(AirflowFailException) as info:
        _operator().execute(make_context(_store_for()))
    assert info.value.__cause__.failure_code == code
    assert fake_hook.created == []


def test_reattach_skipped_when_the_request_changed(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.create_result = make_generation("queued", generation_id=OTHER_ID)
    store = _store_for(aspect_ratio="1:1")
    _operator(aspect_ratio="16:9", wait_for_completion=False).execute(make_context(store))
    assert len(fake_hook.created) == 1 and fake_hook.get_calls == []
    record = store.values[STATE_KEY]
    assert (record["request_id"], record["fingerprint"]) == (REQUEST_ID, _fingerprint(aspect_ratio="16:9"))
    assert (record["generation_id"], record["pending"], record["failure_reported"]) == (OTHER_ID, False, None)


def test_resubmit_flag_forces_a_new_submission(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.create_result = make_generation("queued", generation_id=OTHER_ID)
    _operator(resubmit_on_retry=True, wait_for_completion=False).execute(make_context(_store_for()))
    assert len(fake_hook.created) == 1 and fake_hook.get_calls == []


def test_reattach_to_a_vanished_generation_submits_anew(fake_hook: FakeHook, clock: FakeClock) -> None:
    fake_hook.create_result = make_generation("queued", generation_id=OTHER_ID)
    fake_hook.script([LumaNotFoundError(404, "Generation not found", "r")])
    _operator(wait_for_completion=False).execute(make_context(_store_for()))
    assert len(fake_hook.created) == 1


def test_without_task_state_store_it_submits_and_says_so_once(
    fake_hook: FakeHook, clock: FakeClock, capsys
) -> None:
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    _operator(wait_for_completion=False).execute(make_context(store=None))
    assert len(fake_hook.created) == 1
    assert capsys.readouterr().out.count("task_state_store is not available") == 1


# --- references: upstream results and storage files ------------------------------------------------------


def test_upstream_result_dict_chains_on_its_generation(fake_hook: FakeHook, clock: FakeClock) -> None:
    upstream = {"generation_id": GEN_ID, "state": "completed", "model": "uni-1"}
    _operator(type="image_edit", source=upstream, wait_for_completion=False).execute(make_context())
    assert fake_hook.created[0].to_json()["source"] == {"generation_id": GEN_ID}


def test_storage_source_is_sent_as_base64_and_described_without_bytes(
    fake_hook: FakeHook, clock: FakeClock, tmp_path
) -> None:
    image = tmp_path / "photo.bin"  # no useful suffix: the media type comes from the magic bytes
    image.write_bytes(PNG)
    operator = _operator(
        type="image_edit", source=f"file://{image}", image_ref=[image], wait_for_completion=False
    )
    result = operator.execute(make_context())
    body = fake_hook.created[0].to_json()
    assert body["source"] == {"data": base64.b64encode(PNG).decode(), "media_type": "image/png"}
    assert body["image_ref"] == [body["source"]]
    assert operator.source == f"file://{image}"  # the templated attribute never holds the bytes
    assert base64.b64encode(PNG).decode() not in json.dumps(result)
    assert result["request"]["source"]["bytes"] == len(PNG)
    assert result["estimated_cost_usd"] == 0.0464  # edit + one reference


def test_oversized_storage_file_is_refused_before_reading(
    fake_hook: FakeHook, clock: FakeClock, tmp_path, monkeypatch
) -> None:
    from airflow.sdk import ObjectStoragePath

    big = tmp_path / "big.png"
    with big.open("wb") as handle:
        handle.truncate(MAX_IMAGE_BYTES + 1)  # sparse: no 50 MB written
    monkeypatch.setattr(ObjectStoragePath, "open", lambda *a, **k: pytest.fail("read a file over the limit"))
    with pytest.raises(AirflowFailException) as info:
        _operator(type="image_edit", source=f"file://{big}").execute(make_context())
    assert info.value.__cause__.field == "source"
    assert "50 MB" in str(info.value)
    assert fake_hook.created == []


def test_storage_file_that_is_not_an_image_is_refused(
    fake_hook: FakeHook, clock: FakeClock, tmp_path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(AirflowFailException, match="not a PNG, JPEG, WebP or GIF"):
        _operator(type="image_edit", source=f"file://{text}").execute(make_context())
    assert fake_hook.created == []


# --- timing: the task's own value, else the deployment's [luma] options, else Luma's advice -----------


def test_timing_defaults_follow_luma_advice() -> None:
    operator = _operator()
    assert (operator.initial_wait, operator.poll_interval, operator.timeout) == (20.0, 2.0, 900.0)


def test_timing_defaults_come_from_the_luma_config_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__LUMA__INITIAL_WAIT", "7.5")
    monkeypatch.setenv("AIRFLOW__LUMA__POLL_INTERVAL", "3")
    configured = _operator()
    assert (configured.initial_wait, configured.poll_interval) == (7.5, 3.0)
    own = _operator(initial_wait=1, poll_interval=0.5)
    assert (own.initial_wait, own.poll_interval) == (1.0, 0.5)


def test_a_store_that_cannot_record_the_submission_sends_nothing(fake_hook: FakeHook) -> None:
    """Without the write-ahead record no later try could tell the POST happened: do not send it."""
    with pytest.raises(AirflowException, match="nothing was sent") as info:
        _operator().execute(make_context(FailingTaskStateStore()))
    assert not isinstance(info.value, AirflowFailException)  # nothing was sent: a retry is safe
    assert fake_hook.created == []


def test_a_store_that_cannot_remember_the_id_fails_without_retry(fake_hook: FakeHook) -> None:
    """A retry would not find the generation and would pay for another: stop, and name the id."""
    fake_hook.create_result = make_generation("queued", generation_id=GEN_ID)
    with pytest.raises(AirflowFailException, match=rf"{GEN_ID} was submitted .* could not be remembered"):
        _operator().execute(make_context(FailingTaskStateStore(fail_after=1)))
    assert len(fake_hook.created) == 1 and fake_hook.get_calls == []


@pytest.mark.parametrize(
    "reference",
    [
        "https://bucket.example/ref.png?X-Amz-Signature=s3cr3t",
        "http://bucket.example/ref.png?X-Amz-Signature=s3cr3t",  # refused later, but shown first
        {"url": "https://bucket.example/ref.png?X-Amz-Signature=s3cr3t"},
        {"data": base64.b64encode(PNG + b"s3cr3t").decode(), "media_type": "image/png"},
    ],
    ids=["https", "http", "mapping-url", "mapping-data"],
)
def test_a_rendered_reference_is_stored_without_its_signature_or_bytes(reference: object) -> None:
    """What Airflow stores as the rendered field (and the UI shows) is the reference's description."""
    from airflow_provider_luma.operators._rendering import conceal

    shown = json.dumps(conceal(reference, "image_ref[0]").serialize())
    assert "s3cr3t" not in shown and base64.b64encode(PNG).decode() not in shown
