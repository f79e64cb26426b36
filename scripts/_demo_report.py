"""
What the demo reports: the stored images checked against their records, where the manifest and the
gallery are, what the run cost, what ran in the triggerer, and, when something failed, which task
and the end of its log.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_luma._redaction import redact_secrets

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator
    from airflow_provider_luma.testing.airflow_services import AirflowServices

LOG_TAIL_LINES = 25


class DemoError(Exception):
    """A failure explained in one message, shown without a traceback."""


@dataclass(frozen=True)
class StoredImage:
    path: Path
    record: Path
    size: int
    sha256: str
    generation_id: str
    prompt: str


def _local(uri: str) -> Path:
    if not uri.startswith("file://"):
        raise DemoError(f"{uri} is not on local disk; the demo stores to a local folder")
    return Path(uri.removeprefix("file://"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for chunk in iter(partial(source.read, 1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stored_images(services: AirflowServices, dag_id: str, run_id: str) -> list[StoredImage]:
    """The images the run's manifest names, each read back and checked against its metadata record."""
    manifest = json.loads(
        _local(services.xcom(dag_id, run_id, "publish_manifest")["manifest_uri"]).read_text()
    )
    images = []
    for entry in manifest["images"]:
        path, record_path = _local(entry["uri"]), _local(entry["metadata_uri"])
        record = json.loads(record_path.read_text())
        image = StoredImage(
            path=path,
            record=record_path,
            size=path.stat().st_size,
            sha256=_sha256(path),
            generation_id=entry["generation_id"],
            prompt=str((record.get("request") or {}).get("prompt", "")),
        )
        if (image.size, image.sha256) != (record["size"], record["sha256"]) or record["uri"] != entry["uri"]:
            raise DemoError(f"{path} does not match its metadata record {record_path}")
        images.append(image)
    if not images:
        raise DemoError(f"The run {run_id} succeeded but its manifest names no image")
    return images


def print_summary(
    services: AirflowServices,
    runs: tuple[tuple[str, str], tuple[str, str]],
    images: list[StoredImage],
    emulator: LumaEmulator | None,
    seconds: float,
) -> None:
    (refresh_dag, refresh_run), (gallery_dag, gallery_run) = runs
    manifest = services.xcom(refresh_dag, refresh_run, "publish_manifest")
    gallery = services.xcom(gallery_dag, gallery_run, "build_gallery")
    spend = services.xcom(refresh_dag, refresh_run, "spend")
    print(
        f"\nLuma demo finished in {seconds:.0f} s: {len(images)} image(s) stored, each matching its record."
    )
    for image in images:
        print(f"  {image.path}")
        print(f"      {image.size} bytes  sha256 {image.sha256}")
        print(f"      record {image.record.name}  generation {image.generation_id}")
        print(f"      prompt: {image.prompt}")
    print(f"Manifest (one Asset event for the batch): {_local(manifest['manifest_uri'])}")
    print(f"Gallery page: {_local(gallery['gallery_uri'])}")
    print(f"      open {gallery['gallery_uri']}")
    print(
        f"Estimated cost (Luma's list prices): {spend['estimated_cost_usd']:.4f} USD for "
        f"{spend['submissions']} submission(s), {spend['abandoned']} abandoned"
    )
    jobs = services.job_counts()
    waits = services.waits_ended_in_triggerer(refresh_dag, refresh_run)
    generates = sum(task_id == "generate" for task_id, _ in waits)
    print(
        f"Waits in the triggerer: {generates} generate task instance(s) deferred, each resumed by its "
        f"trigger's event; {services.database} "
        f"holds {jobs.get('TriggererJob', 0)} TriggererJob(s), {jobs.get('SchedulerJob', 0)} SchedulerJob(s)"
    )
    if emulator is not None:
        stats = emulator.stats
        print(
            f"Emulator: {stats.generations_created} generation(s) created "
            f"({stats.requests['POST /v1/generations']} POST), "
            f"{stats.requests['GET /v1/generations/{id}']} status GET(s), "
            f"{stats.requests['GET output']} output download(s)."
        )


def failure_report(services: AirflowServices, dag_id: str, run_id: str) -> str:
    """Which task instances failed, and the end of each one's last log."""
    failed = services.failed_task_instances(dag_id, run_id)
    parts = [
        f"{dag_id} run {run_id} failed ({services.progress(dag_id, run_id)}); failed task(s): "
        + (", ".join(_name(ti) for ti in failed) or "none (the run itself failed, e.g. it timed out)")
    ]
    for ti in failed:
        tail = services.task_log_tail(ti, LOG_TAIL_LINES)
        if tail is None:
            parts.append(f"--- {_name(ti)}: no log under {services.task_logs}")
        else:
            path, text = tail
            # Airflow masks the connection's key in task logs; this also cuts anything shaped like one.
            parts.append(f"--- {_name(ti)}, the end of {path}:\n{redact_secrets(text)}")
    return "\n".join(parts)


def _name(ti: dict[str, Any]) -> str:
    return ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
