"""
Storage images sent as uploaded files, in real Airflow runs (``dag.test()``) against the emulator: a
reference shared by a mapped run is uploaded once, a later run reuses it, an expired one is uploaded
again, and a retry that reattaches uploads nothing.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from tests.dags.shared_reference import PROMPTS
from tests.support import run_dag, xcom

if TYPE_CHECKING:
    from airflow_provider_luma.testing import LumaEmulator

pytestmark = pytest.mark.usefixtures("airflow_db", "luma_connection")

DAGS = Path(__file__).resolve().parents[1] / "dags"


def _image(kind: str, size: tuple[int, int], colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=kind)
    return buffer.getvalue()


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    files = {
        "brand.png": _image("PNG", (24, 24), "purple"),
        "billboard.jpg": _image("JPEG", (48, 32), "grey"),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    monkeypatch.setenv("LUMA_TEST_INPUTS", f"file://{tmp_path}")
    return files


def _uploads(emulator: LumaEmulator) -> tuple[int, int]:
    requests = emulator.stats.requests
    return requests.get("POST /v1/files", 0), emulator.stats.file_uploads


def test_a_shared_reference_is_uploaded_once_for_a_mapped_run(
    luma_emulator: LumaEmulator, monkeypatch: pytest.MonkeyPatch, inputs: dict[str, bytes]
) -> None:
    state, _, tis = run_dag(monkeypatch, DAGS / "shared_reference.py", "luma_shared_reference")

    assert state == "success"
    # One file for the brand reference (all six tasks), one for the edit's source.
    assert _uploads(luma_emulator) == (2, 2)
    results = [xcom(tis[("generate", index)]) for index in range(len(PROMPTS))]
    brand_sha = hashlib.sha256(inputs["brand.png"]).hexdigest()
    # Whichever map index ran first uploaded it; every other one found it.
    reused = sorted(item["reused"] for result in results for item in result["uploaded_inputs"])
    assert reused == [False] + [True] * (len(PROMPTS) - 1)
    [brand_file] = {item["file_id"] for result in results for item in result["uploaded_inputs"]}
    for result in results:
        [ref] = result["request"]["image_ref"]
        assert ref == {"file_id": brand_file, "uri": ref["uri"], "sha256": brand_sha}
        assert ref["uri"].endswith("/brand.png")
    edit = xcom(tis[("edit", -1)])
    assert edit["request"]["source"]["sha256"] == hashlib.sha256(inputs["billboard.jpg"]).hexdigest()
    assert {item["field"]: item["reused"] for item in edit["uploaded_inputs"]} == {
        "source": False,
        "image_ref[0]": True,
    }
    # The edit's output keeps its source's size: the emulator read the uploaded file, not a guess.
    assert edit["output_count"] == 1


def test_a_later_run_reuses_the_upload_and_an_expired_one_is_uploaded_again(
    luma_emulator: LumaEmulator, monkeypatch: pytest.MonkeyPatch, inputs: dict[str, bytes]
) -> None:
    run_dag(monkeypatch, DAGS / "shared_reference.py", "luma_shared_reference")
    assert _uploads(luma_emulator) == (2, 2)

    state, _, _ = run_dag(monkeypatch, DAGS / "shared_reference.py", "luma_shared_reference")
    assert state == "success"
    assert _uploads(luma_emulator) == (2, 2)

    for file_id in luma_emulator.file_ids():
        luma_emulator.expire_file(file_id)
    state, _, tis = run_dag(monkeypatch, DAGS / "shared_reference.py", "luma_shared_reference")
    assert state == "success"
    assert _uploads(luma_emulator) == (4, 4)
    reused = [xcom(tis[("generate", index)])["uploaded_inputs"][0]["reused"] for index in range(len(PROMPTS))]
    assert reused.count(False) == 1


def test_a_run_over_its_cap_uploads_nothing(
    luma_emulator: LumaEmulator, monkeypatch: pytest.MonkeyPatch, inputs: dict[str, bytes]
) -> None:
    state, _, _ = run_dag(monkeypatch, DAGS / "shared_reference.py", "luma_shared_reference_capped")

    assert state == "failed"
    assert _uploads(luma_emulator) == (0, 0)
    assert luma_emulator.stats.requests.get("GET /v1/files", 0) == 0
    assert luma_emulator.stats.generations_created == 0
