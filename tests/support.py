"""
Helpers shared by the test modules (fixtures live in the conftest files): DAG runs, completed
generations on the emulator, an S3 server handle, a minimal task context.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pytest

BUCKET = "luma-outputs"
AWS_CONN_ID = "aws_test"


@dataclass
class S3Server:
    endpoint_url: str
    client: Any

    def keys(self) -> list[str]:
        return [item["Key"] for item in self.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]

    def pending_multipart_uploads(self) -> list[Any]:
        return self.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])

    def empty(self) -> None:
        for key in self.keys():
            self.client.delete_object(Bucket=BUCKET, Key=key)


class DagRunResult(NamedTuple):
    state: str
    run_id: str
    #: Task instances by (task_id, map_index).
    tis: dict[tuple[str, int], Any]


def run_dag(
    monkeypatch: pytest.MonkeyPatch,
    dag_file: Path,
    dag_id: str,
    conf: dict[str, Any] | None = None,
) -> DagRunResult:
    """Run one DAG of a file with ``dag.test()`` and read back its task instances."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    # dag.test() re-parses its whole bundle, and needs the file inside it: one small folder.
    folder = str(dag_file.parent)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", folder)
    monkeypatch.setattr("airflow.settings.DAGS_FOLDER", folder)
    # The emulator finishes in a fraction of a second: Luma's production timing (a first check
    # after 20 s) would only slow the suite.
    monkeypatch.setenv("AIRFLOW__LUMA__INITIAL_WAIT", "0.05")
    monkeypatch.setenv("AIRFLOW__LUMA__POLL_INTERVAL", "0.05")
    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[dag_id]
    run = dag.test(run_conf=conf)
    with create_session() as session:
        tis = session.get(DagRun, run.id).get_task_instances(session=session)
        return DagRunResult(run.state, run.run_id, {(ti.task_id, ti.map_index): ti for ti in tis})


def use_output_folder(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    """
    Make ``folder`` the deployment's storage (``[luma] output_path``) for DAG runs, with no storage
    connection and the example DAGs' own assets: whatever the environment set is undone.
    """
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("AIRFLOW__LUMA__OUTPUT_PATH", folder.as_uri())
    monkeypatch.delenv("AIRFLOW__LUMA__OUTPUT_CONN_ID", raising=False)
    monkeypatch.delenv("LUMA_EXAMPLE_ASSETS", raising=False)
    monkeypatch.delenv("LUMA_EXAMPLE_ASSETS_CONN_ID", raising=False)
    return folder


def xcom(ti: Any, key: str = "return_value") -> Any:
    """The value a task instance pushed under ``key``, read from the metadata DB."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index, key=key
            )
            .one()
        )
        return XComModel.deserialize_value(row)


def completed_generation(luma_conn_id: str, prompt: str = "a red bicycle", **fields: Any) -> dict[str, Any]:
    """
    Submit a generation to the emulator, wait (bounded) until it is completed, and return a result dict.

    The dict has the shape ``LumaGenerateImageOperator`` returns, so the upload can read the request.
    """
    from airflow_provider_luma.hooks.luma import LumaHook
    from airflow_provider_luma.models import GenerationRequest

    request = GenerationRequest.build(prompt=prompt, **fields)
    with LumaHook(luma_conn_id=luma_conn_id) as hook:
        generation = hook.create_generation(request)
        deadline = time.monotonic() + 20
        while not generation.is_terminal:
            if time.monotonic() > deadline:
                raise TimeoutError(f"generation {generation.id} still {generation.state.value}")
            time.sleep(0.02)
            generation = hook.get_generation(generation.id)
    assert generation.state.value == "completed", generation.summary()
    return {
        **generation.summary(),
        "estimated_cost_usd": request.estimated_cost_usd(),
        "request": request.describe(),
    }


def emulator_bytes(luma_conn_id: str, generation_id: str) -> bytes:
    """The output's bytes fetched straight from a fresh URL, not through the code under test."""
    import httpx

    from airflow_provider_luma.hooks.luma import LumaHook

    with LumaHook(luma_conn_id=luma_conn_id) as hook:
        url = hook.get_generation(generation_id).output[0].url
    response = httpx.get(url)
    response.raise_for_status()
    return response.content


def task_context(task_id: str = "upload") -> dict[str, Any]:
    """The parts of an Airflow context the upload reads, for tests that call ``execute`` directly."""
    ti = SimpleNamespace(dag_id="unit", task_id=task_id, run_id="manual__1", map_index=-1, try_number=1)
    return {"ti": ti}


# --- leak scanning: nothing secret or bulky in logs, XCom, trigger kwargs, templates, lineage --------

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

#: What a presigned URL's query string carries; any of these (case-insensitive) in text a user or a
#: deployment can read is a leaked credential.
PRESIGNED_MARKERS: tuple[str, ...] = ("x-amz-signature", "x-amz-credential", "signature=")
#: A base64 run at least this long, taken from an input image, counts as the image leaking.
BASE64_RUN = 64


def find_leaks(
    texts: Mapping[str, str],
    *,
    secrets: Iterable[str] = (),
    base64_images: Iterable[str] = (),
    markers: Iterable[str] = PRESIGNED_MARKERS,
    min_run: int = BASE64_RUN,
) -> list[str]:
    """
    Where a secret shows in ``texts`` (a name, such as a file or a DB row, to its text): an exact
    ``secrets`` string, a presigned-URL marker, or a run of ``min_run`` characters of a base64 image.

    Any such run holds one of the image's chunks of ``min_run // 2`` characters cut at multiples of
    ``min_run // 2``; so the chunks are searched, and each hit is extended both ways to measure the
    run (a chunk alone may be a header that every image of the same size shares).
    """
    secrets = [secret for secret in secrets if secret]
    markers = [marker.lower() for marker in markers]
    step = min_run // 2
    chunks = [(image, start) for image in base64_images for start in range(0, len(image) - step + 1, step)]
    found = []
    for where, text in texts.items():
        lowered = text.lower()
        found += [f"{where}: secret {secret[:12]}..." for secret in secrets if secret in text]
        found += [f"{where}: presigned URL marker {marker!r}" for marker in markers if marker in lowered]
        runs = [_shared_run(image, start, step, text) for image, start in chunks]
        longest = max(runs, default=0)
        if longest >= min_run:
            found.append(f"{where}: base64 image, a run of {longest} characters")
    return found


def _shared_run(image: str, start: int, length: int, text: str) -> int:
    """The longest run of ``image`` around ``image[start:start + length]`` that ``text`` also holds."""
    best = 0
    at = text.find(image[start : start + length])
    while at != -1:
        left = 0
        while left < min(start, at) and image[start - left - 1] == text[at - left - 1]:
            left += 1
        right = 0
        end, text_end = start + length, at + length
        while (
            end + right < len(image)
            and text_end + right < len(text)
            and (image[end + right] == text[text_end + right])
        ):
            right += 1
        best = max(best, left + length + right)
        at = text.find(image[start : start + length], at + 1)
    return best


def assert_no_leaks(texts: Mapping[str, str], **kwargs: Any) -> None:
    """Fail naming every place :func:`find_leaks` finds; ``kwargs`` are its keyword arguments."""
    assert texts, "nothing was captured to scan"
    leaks = find_leaks(texts, **kwargs)
    assert not leaks, "\n".join(leaks)


def text_files(root: Path, *, name_contains: str = "", suffixes: Iterable[str] = ()) -> dict[str, str]:
    """The text of the files under ``root`` whose path contains ``name_contains`` (and ends in a suffix)."""
    suffixes = tuple(suffixes)
    return {
        str(path): path.read_text(errors="replace")
        for path in sorted(root.rglob("*"))
        if path.is_file() and name_contains in str(path) and (not suffixes or path.name.endswith(suffixes))
    }


def metadata_db_texts(
    dag_ids: Iterable[str], run_ids: Iterable[str] | None = None, sql_alchemy_conn: str | None = None
) -> dict[str, str]:
    """
    The rows of an Airflow metadata DB that belong to ``dag_ids``, as text: every table with a
    ``dag_id`` (or ``source_dag_id``) column, filtered on it (XComs, rendered template fields, task
    instances with their ``next_kwargs``, the audit log, the run's conf...), plus the live triggers.

    :param run_ids: keep only these runs' rows in the tables that have a ``run_id`` column.
    :param sql_alchemy_conn: the DB to read (e.g. ``sqlite:///<AIRFLOW_HOME>/airflow.db`` of the e2e
        services); by default, the one this process's Airflow uses.
    """
    from sqlalchemy import MetaData, create_engine, select

    if sql_alchemy_conn is None:
        from airflow import settings

        engine = settings.engine
    else:
        engine = create_engine(sql_alchemy_conn)
    dag_ids = list(dag_ids)
    run_ids = None if run_ids is None else list(run_ids)
    metadata = MetaData()
    metadata.reflect(engine)
    texts = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            column = next((table.c[name] for name in ("dag_id", "source_dag_id") if name in table.c), None)
            if column is None and table.name != "trigger":
                continue
            query = select(table) if column is None else select(table).where(column.in_(dag_ids))
            if run_ids is not None and "run_id" in table.c:
                query = query.where(table.c.run_id.in_(run_ids))
            for index, row in enumerate(connection.execute(query)):
                texts[f"db {table.name} row {index}"] = " ".join(
                    value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    for value in row._mapping.values()
                )
    return texts


def complete_events(events_file: Path, job_name: str, count: int) -> list[dict[str, Any]]:
    """The COMPLETE events of a job, once ``count`` of them are in the file (bounded wait)."""
    deadline = time.monotonic() + 15
    while True:
        lines = events_file.read_text().splitlines(keepends=True) if events_file.exists() else []
        events = [json.loads(line) for line in lines if line.endswith("\n")]
        complete = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == job_name]
        if len(complete) >= count or time.monotonic() > deadline:
            return complete
        time.sleep(0.05)


def store_output(
    root: Path,
    name: str,
    *,
    generation_id: str,
    prompt: str,
    index: int = 0,
    cost: float | None = 0.0404,
    dag_id: str = "refresh",
    written_at: str = "2026-12-01T10:00:00+00:00",
    data: bytes | None = None,
) -> dict[str, Any]:
    """
    An image and its metadata record at ``root / name``, as the upload writes them; returns the
    upload's result entry for it (what ``LumaUploadOutputsOperator`` lists under ``outputs``).

    :param data: the image's bytes; by default a PNG signature and a few bytes, which no browser
        decodes (pass a real image for a test that renders the page).
    """
    import hashlib

    image = root / name
    image.parent.mkdir(parents=True, exist_ok=True)
    data = data if data is not None else b"\x89PNG\r\n\x1a\n" + name.encode() + bytes([index])
    image.write_bytes(data)
    entry = {
        "index": index,
        "layer": None,
        "uri": image.as_uri(),
        "metadata_uri": image.as_uri() + ".json",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "content_type": "image/png",
    }
    record = {
        "format_version": 1,
        "generation_id": generation_id,
        "index": index,
        "layer": None,
        "model": "uni-1",
        "type": "image",
        "created_at": "2026-12-01T10:00:00Z",
        "request": {"prompt": prompt, "aspect_ratio": "9:16", "type": "image", "model": "uni-1"},
        "estimated_cost_usd": cost,
        "uri": entry["uri"],
        "sha256": entry["sha256"],
        "size": entry["size"],
        "content_type": "image/png",
        "written_at": written_at,
        "airflow": {"dag_id": dag_id, "task_id": "upload", "run_id": "manual__1", "map_index": index},
    }
    Path(str(image) + ".json").write_text(json.dumps(record))
    return entry
