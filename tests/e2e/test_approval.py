"""
The approval example end to end on the real Airflow services, driven through Airflow's REST API as a
reviewer would: ``luma_marketing_refresh_with_approval`` stages three images, waits for a person in
``review`` (Airflow's HITL), and after "publish two of the three" copies exactly those two into the
published folder and announces them as one batch. On the way, the review's links into the Luma view
(the provider's plugin on the api-server) are followed: they answer with the staged image only to a
logged-in caller.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_provider_luma.testing.airflow_services import AirflowServices, wait_for
from tests.e2e.deployment import luma_deployment

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
DAG_ID = "luma_marketing_refresh_with_approval"
HITL_PATH = "/dags/{dag}/dagRuns/{run}/taskInstances/review/-1/hitlDetails"


@dataclass
class ApprovalRun:
    services: AirflowServices
    output: Path
    run_id: str = ""
    run: dict[str, Any] = field(default_factory=dict)
    review: dict[str, Any] = field(default_factory=dict)
    chosen: list[str] = field(default_factory=list)
    staged: dict[str, dict[str, Any]] = field(default_factory=dict)
    view_answers: list[tuple[int, bytes, int]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _staged_records(output: Path) -> dict[str, dict[str, Any]]:
    return {
        json.loads(path.read_text())["generation_id"]: json.loads(path.read_text())
        for path in (output / "staging").rglob("*.png.json")
    }


@pytest.fixture(scope="module")
def approval(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApprovalRun]:
    from airflow_provider_luma.testing import LumaEmulator

    root = tmp_path_factory.mktemp("approval")
    emulator = LumaEmulator(queued_seconds=0.2, processing_seconds=0.8, long_edge=64)
    with luma_deployment(
        root,
        emulator,
        dags_folder=EXAMPLE_DAGS,
        login=("reviewer", "approval-e2e-password"),
        AIRFLOW__LUMA__INITIAL_WAIT="0.5",
        AIRFLOW__LUMA__POLL_INTERVAL="0.5",
    ) as services:
        result = ApprovalRun(services=services, output=root / "output")
        services.wait_for_dag(DAG_ID)
        services.create_pool("luma_api", 10, "Luma concurrent jobs", include_deferred=True)
        result.run_id = run_id = services.trigger(DAG_ID, {"max_images": 3})
        hitl = HITL_PATH.format(dag=DAG_ID, run=run_id)

        def awaiting_review() -> dict[str, Any] | None:
            services.raise_if_exited()
            response = services.api("GET", hitl)
            return dict(response.json()) if response.status_code == 200 else None

        result.review = wait_for("the review to wait for a person", awaiting_review, timeout=300, interval=1)
        result.staged = _staged_records(result.output)
        # Follow each of the review's image links into the Luma view, with and without a login.
        for link in re.findall(r"\]\((/luma/\?generation_id=[^)]*)\)", result.review["body"] or ""):
            anonymous = httpx.get(services.base_url + link, timeout=30, follow_redirects=False)
            listing = httpx.get(
                f"{services.base_url}/luma/api/images?" + link.split("?", 1)[1],
                headers=services.auth_headers(),
                timeout=30,
            )
            for image in listing.json()["images"]:
                url = f"{services.base_url}/luma/{image['image_url']}"
                authorized = httpx.get(url, headers=services.auth_headers(), timeout=30)
                anonymous_image = httpx.get(url, timeout=30)
                result.view_answers.append(
                    (authorized.status_code, authorized.content, anonymous_image.status_code)
                )
            result.view_answers.append((anonymous.status_code, b"", anonymous.status_code))
        result.chosen = result.review["options"][0:3:2]  # the first and the third
        services.api_json("PATCH", hitl, json={"chosen_options": result.chosen})
        result.run = services.wait_for_run(DAG_ID, run_id, timeout=300)
        result.counts = {"created": emulator.stats.generations_created, **emulator.stats.requests}
        yield result


def test_the_run_succeeds_after_the_review(approval: ApprovalRun) -> None:
    states = {
        ti["task_id"]: ti["state"] for ti in approval.services.all_task_instances(DAG_ID, approval.run_id)
    }
    assert approval.run["state"] == "success", states
    assert set(states.values()) == {"success"}


def test_the_review_names_each_staged_image_with_a_link_into_the_luma_view(approval: ApprovalRun) -> None:
    review = approval.review
    assert review["multiple"] is True and len(review["options"]) == 9
    body = review["body"]
    assert len(approval.staged) == 3
    for label, generation_id in zip(review["options"][:3], _staged_order(approval), strict=True):
        assert re.search(
            rf"\| {re.escape(label)} \| \[[^]]+\]\(/luma/\?generation_id={generation_id}\)", body
        )


def _staged_order(approval: ApprovalRun) -> list[str]:
    """The staged generations by the map index of the upload that stored them."""
    return [
        gid for gid, _ in sorted(approval.staged.items(), key=lambda item: item[1]["airflow"]["map_index"])
    ]


def test_the_linked_images_are_served_only_to_a_logged_in_user(approval: ApprovalRun) -> None:
    images = [answer for answer in approval.view_answers if answer[1]]
    assert len(images) == 3
    staged_sha = {record["sha256"] for record in approval.staged.values()}
    for status, content, anonymous_status in images:
        assert status == 200 and content.startswith(b"\x89PNG")
        assert hashlib.sha256(content).hexdigest() in staged_sha
        assert anonymous_status == 401
    # The page itself sends a visitor without a session to log in.
    pages = [answer for answer in approval.view_answers if not answer[1]]
    assert pages and {status for status, _, _ in pages} == {303}


def test_exactly_the_approved_images_are_published(approval: ApprovalRun) -> None:
    order = _staged_order(approval)
    approved = {order[0], order[2]}
    published = {
        json.loads(path.read_text())["generation_id"]: (path, json.loads(path.read_text()))
        for path in (approval.output / "published").rglob("*.png.json")
    }
    assert set(published) == approved
    for generation_id, (record_path, record) in published.items():
        image = Path(str(record_path).removesuffix(".json"))
        data = image.read_bytes()
        staged = approval.staged[generation_id]
        # The same bytes that were reviewed, described at their new place, and where they came from.
        assert hashlib.sha256(data).hexdigest() == record["sha256"] == staged["sha256"]
        assert record["uri"] == image.as_uri() and record["promoted"]["from"] == staged["uri"]
    [folder] = {path.parent for path, _ in published.values()}
    assert sorted(path.name for path in folder.iterdir() if not path.name.endswith(".png.json")) == sorted(
        [*(path.name.removesuffix(".json") for path, _ in published.values()), "manifest.json"]
    )
    # The one not approved stays in staging only.
    assert len(list((approval.output / "staging").rglob("*.png"))) == 3


def test_one_asset_event_announces_the_published_batch(approval: ApprovalRun) -> None:
    services = approval.services
    [asset] = [
        a for a in services.api_json("GET", "/assets")["assets"] if a["name"] == "luma_marketing_published"
    ]
    events = services.api_json("GET", "/assets/events", params={"asset_id": asset["id"]})["asset_events"]
    [event] = [e for e in events if e["source_run_id"] == approval.run_id]
    assert event["extra"]["images"] == 2 and event["extra"]["generations"] == 2
    assert "/published/" in event["extra"]["manifest_uri"]


def test_nothing_was_paid_twice(approval: ApprovalRun) -> None:
    assert approval.counts["created"] == approval.counts["POST /v1/generations"] == 3
