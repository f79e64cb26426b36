"""
Fault matrix, secrets: real DAG runs (``dag.test()``) against the emulator, then every trace they left
is scanned for the API key, presigned-URL query strings and pieces of a base64 input image.

Scanned: every log record (a root handler at DEBUG, before any masking) and the console; the task log
files under AIRFLOW_HOME/logs; the metadata DB rows of the runs (XComs, rendered template fields,
task instances with their ``next_kwargs``, the audit log); what each trigger serialised, each event
it fired and each deferral's kwargs; the OpenLineage events of a real listener; the metadata records
the uploads wrote. Each source also has to show what it should (a canary), so an empty capture
cannot pass for a clean one.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_luma.testing import Fault
from airflow_provider_luma.testing.images import render
from airflow_provider_luma.triggers.luma import LumaGenerationTrigger
from tests.support import assert_no_leaks, find_leaks, metadata_db_texts, run_dag, text_files, xcom

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "secrets_runs.py"
REVOKED_CONN_ID = "luma_revoked"


class Traces:
    """What the runs left behind, by where it was found."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.triggers: list[Any] = []
        self.trigger_events: list[Any] = []
        self.deferrals: list[Any] = []
        #: Called with the generation id of each deferral, before the trigger runs.
        self.on_defer: Callable[[str], None] | None = None

    def record_texts(self) -> dict[str, str]:
        formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
        # The formatted line (with any traceback) and the raw fields, extras and args included.
        return {
            f"log record {index} ({record.name})": f"{formatter.format(record)} {vars(record)!r}"
            for index, record in enumerate(self.records)
        }


class _Collect(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def traces(monkeypatch: pytest.MonkeyPatch) -> Iterator[Traces]:
    """Record log records at DEBUG on the root logger, and what every trigger and deferral carried."""
    from airflow.sdk import BaseOperator

    found = Traces()
    serialize, run, defer = LumaGenerationTrigger.serialize, LumaGenerationTrigger.run, BaseOperator.defer

    def recording_serialize(self: LumaGenerationTrigger) -> tuple[str, dict[str, Any]]:
        found.triggers.append(serialize(self))
        return found.triggers[-1]

    async def recording_run(self: LumaGenerationTrigger) -> Any:
        async for event in run(self):
            found.trigger_events.append(event.payload)
            yield event

    def recording_defer(self: BaseOperator, **kwargs: Any) -> Any:
        found.deferrals.append({**kwargs, "trigger": kwargs["trigger"].serialize(), "task": self.task_id})
        if found.on_defer is not None:
            found.on_defer(kwargs["trigger"].generation_id)
        return defer(self, **kwargs)

    monkeypatch.setattr(LumaGenerationTrigger, "serialize", recording_serialize)
    monkeypatch.setattr(LumaGenerationTrigger, "run", recording_run)
    monkeypatch.setattr(BaseOperator, "defer", recording_defer)
    root = logging.getLogger()
    handler, level = _Collect(found.records), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield found
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _unmistakable_key() -> str:
    return f"luma-api-SECRETKEY{secrets.token_hex(16)}"


def _lineage_events(events_file: Path, expected: int) -> list[dict[str, Any]]:
    """The OpenLineage events in the file once ``expected`` runs have ended (bounded wait: they come
    from the listener's thread)."""
    deadline = time.monotonic() + 15
    while True:
        lines = events_file.read_text().splitlines(keepends=True) if events_file.exists() else []
        events = [json.loads(line) for line in lines if line.endswith("\n")]
        ended = [event for event in events if event["eventType"] in ("COMPLETE", "FAIL")]
        if len(ended) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


@pytest.mark.usefixtures("airflow_db")
def test_no_key_presigned_url_or_base64_image_in_any_trace(
    luma_emulator: Any,
    traces: Traces,
    openlineage_events: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    key, revoked_key = _unmistakable_key(), _unmistakable_key()
    luma_emulator.add_api_key(key)
    luma_emulator.add_api_key(revoked_key, "revoked")
    connection = {"conn_type": "luma", "host": luma_emulator.base_url}
    monkeypatch.setenv("AIRFLOW_CONN_LUMA_DEFAULT", json.dumps({**connection, "password": key}))
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{REVOKED_CONN_ID.upper()}", json.dumps({**connection, "password": revoked_key})
    )
    source = tmp_path / "source.png"
    source.write_bytes(render(f"a secret source {secrets.token_hex(8)}", 96, 64, "png"))
    source_base64 = base64.b64encode(source.read_bytes()).decode()
    destination = tmp_path / "out"
    conf = {"source": f"file://{source}", "destination": str(destination), "revoked_conn_id": REVOKED_CONN_ID}

    runs = {}
    for mode in ("deferrable", "worker"):
        if mode == "deferrable":
            # Each generation stays unfinished until its task has deferred (the sensor's too), then
            # completes for the trigger to find.
            luma_emulator.configure(processing_seconds=3600)
            traces.on_defer = lambda generation_id: luma_emulator.set_state(generation_id, "completed")
        else:
            luma_emulator.configure(processing_seconds=0.1)
            traces.on_defer = None
        runs[f"luma_secrets_{mode}"] = run_dag(monkeypatch, DAG_FILE, f"luma_secrets_{mode}", conf)
        # Counted from the start: the deferrable run deferred its three waits, the worker run none.
        assert sorted(deferral["task"] for deferral in traces.deferrals) == ["edit", "generate", "wait"], mode
    luma_emulator.add_fault(Fault(method="POST", status=402))
    luma_emulator.fail_next_generations("content_moderated")
    runs["luma_secrets_failing"] = run_dag(monkeypatch, DAG_FILE, "luma_secrets_failing", conf)

    # The runs did what they should, so there is something to scan.
    for dag_id in ("luma_secrets_deferrable", "luma_secrets_worker"):
        assert runs[dag_id].state == "success", {k: ti.state for k, ti in runs[dag_id].tis.items()}
    failing = runs["luma_secrets_failing"].tis
    assert {task_id: ti.state for (task_id, _), ti in failing.items()} == {
        "payment_required": "failed",
        "moderated": "failed",
        "revoked_key": "failed",
    }
    edited = xcom(runs["luma_secrets_deferrable"].tis[("edit", -1)])
    assert edited["request"]["source"]["bytes"] == source.stat().st_size  # the file was sent
    # One more deferral, the moderated edit's; every trigger fired its event.
    assert [deferral["task"] for deferral in traces.deferrals][-1] == "moderated"
    assert len(traces.trigger_events) == len(traces.deferrals) == 4

    captured = capfd.readouterr()
    console = captured.out + captured.err + caplog.text
    for expected in ("Submitted generation", "HTTP 402", "content_moderated", "HTTP 401"):
        assert expected in console, expected
    db = metadata_db_texts(list(runs), [run.run_id for run in runs.values()])
    assert any(t.startswith("db xcom ") for t in db) and any("rendered_task_instance" in t for t in db)
    assert any("a lighthouse at dusk" in text for name, text in db.items() if "rendered" in name)
    ended = sum(len(run.tis) for run in runs.values())
    lineage = _lineage_events(openlineage_events, ended)
    assert len([e for e in lineage if e["eventType"] in ("COMPLETE", "FAIL")]) >= ended

    texts = {
        "console": console,
        **traces.record_texts(),
        **text_files(Path(os.environ["AIRFLOW_HOME"]) / "logs", name_contains="luma_secrets"),
        **db,
        **{f"trigger {i}": repr(t) for i, t in enumerate(traces.triggers)},
        **{f"trigger event {i}": repr(e) for i, e in enumerate(traces.trigger_events)},
        **{f"deferral {i}": repr(d) for i, d in enumerate(traces.deferrals)},
        **{f"openlineage event {i}": json.dumps(e) for i, e in enumerate(lineage)},
        **text_files(destination, suffixes=[".json"]),
    }
    assert_no_leaks(
        texts,
        secrets=[key, revoked_key, key.removeprefix("luma-api-"), revoked_key.removeprefix("luma-api-")],
        base64_images=[source_base64],
    )


# --- the scanner itself ------------------------------------------------------------------------------

IMAGE = base64.b64encode(os.urandom(300)).decode()


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Submitted generation d290f1ee (state queued)", None),
        ("GET https://s3.example/o.png?<redacted> 200", None),
        ("Authorization: Bearer luma-api-SECRETKEYabc", "secret"),
        ("https://s3.example/o.png?X-Amz-Expires=60&X-Amz-Signature=f00d", "presigned"),
        ("x-amz-credential=EMULATOR%2F20260408", "presigned"),
        ("https://storage.googleapis.com/b/o?Expires=1&Signature=abc", "presigned"),
        (f"body={IMAGE[101 : 101 + 64]}", "base64"),
        (f"body={IMAGE[101 : 101 + 63]}", None),
        (f"{IMAGE[:40]} and {IMAGE[40:100]}", None),
    ],
)
def test_the_scanner_finds_each_kind_of_leak(text: str, found: str | None) -> None:
    leaks = find_leaks({"where": text}, secrets=["luma-api-SECRETKEYabc"], base64_images=[IMAGE])
    assert {leak.split(": ")[1].split(" ")[0] for leak in leaks} == ({found} if found else set())


# --- inputs written inline in the DAG ----------------------------------------------------------------


@pytest.mark.usefixtures("airflow_db", "luma_connection")
def test_inline_base64_and_presigned_inputs_stay_out_of_the_rendered_fields(
    luma_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dag_file = DAG_FILE.with_name("secrets_inline_inputs.py")
    state, run_id, _ = run_dag(monkeypatch, dag_file, "luma_secrets_inline_inputs")
    assert state == "success" and luma_emulator.stats.generations_created == 1  # the inputs were sent
    rendered = {
        name: text
        for name, text in metadata_db_texts(["luma_secrets_inline_inputs"], [run_id]).items()
        if name.startswith("db rendered_task_instance_fields")
    }
    assert rendered and all("make it night" in text for text in rendered.values())
    from tests.dags.secrets_inline_inputs import INLINE_IMAGE

    assert_no_leaks(rendered, base64_images=[INLINE_IMAGE])
