"""
Example: refresh a campaign's images every week, every product for every channel, as one batch.

- ``campaign`` reads ``campaigns/spring_launch.json`` (beside this file) when the run starts, not at
  parse time: products x channels (a 16:9 hero, a 1:1 social post, a 9:16 story), one request each.
  The run's ``max_images`` param takes the first few rows only (a trial run).
- ``generate`` maps one uni-1 generation over the rows. The waits run in the triggerer, and a retry
  reattaches to the generation an earlier try started instead of paying again. Two limits keep to
  the account's: the pool ``luma_api`` (create it with as many slots as the account has concurrent
  jobs, 10 by default, and ``--include-deferred``, so that a task waiting in the triggerer still
  holds its slot: ``airflow pools set luma_api 10 "Luma concurrent jobs" --include-deferred``),
  shared by every DAG that calls Luma, and ``max_active_tis_per_dag``, this DAG's share of it, so
  that a big refresh never starves the others. The run may spend at most ``MAX_RUN_COST_USD``.
- ``upload`` streams each image into the run's folder of the configured storage, with its metadata
  record (prompt, parameters, checksum, cost, the task that made it) beside it.
- ``publish_manifest`` writes the batch's manifest beside the images and announces it on ONE stable
  Asset, ``luma_marketing_refresh``: consumers (``luma_campaign_gallery``, a publishing DAG) are
  scheduled on it and woken once per batch, not once per image with a new Asset every run.
- ``spend`` reports what the run's generations cost (list prices), whatever happened to them.

``luma_marketing_refresh_with_approval`` (built by the same function below, so the two cannot drift
apart) puts a person between the images and their audience: the uploads go to a staging folder,
``review`` (Airflow's ``HITLOperator``, in the UI's "Required actions") shows each staged image with a
link to it in the Luma view and lets the reviewer tick the ones to publish, ``approved`` keeps those,
``publish`` copies exactly the approved bytes to the published folder (each checked against its
recorded sha256), and ``publish_manifest`` announces only them, on ``luma_marketing_published``.

Storage is configured once per deployment, not in the DAG:
``AIRFLOW__LUMA__OUTPUT_PATH=s3://marketing-assets/luma`` and ``AIRFLOW__LUMA__OUTPUT_CONN_ID=aws_default``.
The Luma connection ``luma_default`` (type ``luma``) holds the API key as its password.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_luma.operators.luma import (
    LumaGenerateImageOperator,
    LumaPromoteOutputsOperator,
    LumaPublishManifestOperator,
    LumaRunSpendOperator,
    LumaUploadOutputsOperator,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

CAMPAIGN_FILE = Path(__file__).parent / "campaigns" / "spring_launch.json"
#: One folder per run; ``run_after`` exists for manual runs too (they have no logical date).
RUN_FOLDER = "spring-launch/{{ dag_run.run_after | ts_nodash }}"
#: Nine uni-1 images cost 0.3636 USD at list price; the cap leaves room for a few resubmissions.
MAX_RUN_COST_USD = 0.50


def _campaign() -> dict[str, Any]:
    return dict(json.loads(CAMPAIGN_FILE.read_text()))


def _labels(spec: Mapping[str, Any]) -> list[str]:
    """One name per row, in the rows' order: what a reviewer ticks."""
    return [
        f"{p['name']} / {c['name']} ({c['aspect_ratio']})" for p in spec["products"] for c in spec["channels"]
    ]


#: The review's choices must be known when the DAG is parsed: the rows' names, from the small local file.
REVIEW_OPTIONS = _labels(_campaign())


@task
def campaign(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """One generation request per product and channel, read from the campaign file when the run starts."""
    spec = _campaign()
    rows = [
        {
            "prompt": f"{product['subject']}, {channel['framing']}, {spec['style']}",
            "aspect_ratio": channel["aspect_ratio"],
        }
        for product in spec["products"]
        for channel in spec["channels"]
    ]
    limit = (params or {}).get("max_images")
    return rows[:limit] if limit else rows


@task
def review_sheet(uploads: Sequence[Mapping[str, Any]], dag_run: Any = None) -> str:
    """The review's body (Markdown): each staged image by its option's name, linked into the Luma view."""
    from airflow_provider_luma.links.luma import view_link

    whole_run = view_link(dag_id=dag_run.dag_id, run_id=dag_run.run_id)
    lines = [
        f"Tick the images to publish. All of this run: [Luma view]({whole_run})",
        "",
        "| Option | Image | Generation |",
        "|---|---|---|",
    ]
    for label, upload in zip(REVIEW_OPTIONS, uploads, strict=False):
        link = view_link(generation_id=upload["generation_id"])
        name = upload["outputs"][0]["uri"].rsplit("/", 1)[-1]
        lines.append(f"| {label} | [{name}]({link}) | `{upload['generation_id']}` |")
    return "\n".join(lines)


@task
def approved(uploads: Sequence[Mapping[str, Any]], review: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The uploads whose option the reviewer chose (option i is the upload of map index i)."""
    chosen = set(review["chosen_options"])
    return [dict(upload) for label, upload in zip(REVIEW_OPTIONS, uploads, strict=False) if label in chosen]


def marketing_refresh(dag_id: str, *, approval: bool) -> DAG:
    """The weekly refresh; with ``approval``: staged, reviewed by a person, only the approved published."""
    with DAG(
        dag_id=dag_id,
        schedule=None if approval else "@weekly",
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        params={"max_images": Param(None, type=["null", "integer"], minimum=1)},
        default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
        tags=["example", "luma", *(["approval"] if approval else [])],
        doc_md=__doc__,
    ) as dag:
        generate = LumaGenerateImageOperator.partial(
            task_id="generate",
            output_format="png",
            deferrable=True,
            pool="luma_api",
            max_active_tis_per_dag=4,
            max_run_cost_usd=MAX_RUN_COST_USD,
        ).expand_kwargs(campaign())

        stored_folder = ("staging/" if approval else "") + RUN_FOLDER
        # Jinja fills the run's folder; the single-brace fields are the operator's own, per output.
        upload = LumaUploadOutputsOperator.partial(
            task_id="upload", file_name=stored_folder + "/{generation_id}-{index}{ext}"
        ).expand(generation=generate.output)
        upload >> LumaRunSpendOperator(task_id="spend")

        if not approval:
            LumaPublishManifestOperator(
                task_id="publish_manifest",
                uploads=upload.output,
                file_name=RUN_FOLDER + "/manifest.json",
                outlets=[Asset("luma_marketing_refresh")],
            )
            return dag
        review = HITLOperator(
            task_id="review",
            subject="Which of this week's campaign images go out?",
            body="{{ ti.xcom_pull(task_ids='review_sheet') }}",
            options=REVIEW_OPTIONS,
            multiple=True,
            response_timeout=timedelta(days=3),
        )
        review_sheet(upload.output) >> review
        publish = LumaPromoteOutputsOperator(
            task_id="publish",
            uploads=approved(upload.output, review.output),
            folder="published/" + RUN_FOLDER,
        )
        LumaPublishManifestOperator(
            task_id="publish_manifest",
            uploads=publish.output,
            file_name="published/" + RUN_FOLDER + "/manifest.json",
            outlets=[Asset("luma_marketing_published")],
        )
    return dag


marketing_refresh("luma_marketing_refresh", approval=False)
marketing_refresh("luma_marketing_refresh_with_approval", approval=True)
