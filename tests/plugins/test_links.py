"""The "Luma images" button: each generate and upload task instance links to its own images."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support import run_dag, xcom

QUICKSTART = Path(__file__).resolve().parents[2] / "example_dags" / "luma_quickstart.py"


@pytest.mark.usefixtures("airflow_db", "luma_emulator", "luma_connection")
def test_each_task_links_to_its_generation_in_the_view(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRFLOW__LUMA__OUTPUT_PATH", tmp_path.as_uri())
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example.com:8080/")
    result = run_dag(monkeypatch, QUICKSTART, "luma_quickstart")
    assert result.state == "success"
    generation_id = xcom(result.tis[("generate", -1)])["generation_id"]

    for task_id in ("generate", "store"):
        link = urlsplit(xcom(result.tis[(task_id, -1)], key="_link_LumaImagesLink"))
        assert (link.scheme, link.netloc, link.path) == ("http", "airflow.example.com:8080", "/luma/")
        assert parse_qs(link.query) == {
            "dag_id": ["luma_quickstart"],
            "run_id": [result.run_id],
            "generation_id": [generation_id],
        }


def test_the_link_is_declared_for_airflow_to_deserialize() -> None:
    from airflow_provider_luma.get_provider_info import get_provider_info
    from airflow_provider_luma.links.luma import LumaImagesLink
    from airflow_provider_luma.operators.luma import LumaGenerateImageOperator, LumaUploadOutputsOperator

    path = f"{LumaImagesLink.__module__}.{LumaImagesLink.__qualname__}"
    assert path in get_provider_info()["extra-links"]
    for operator in (LumaGenerateImageOperator, LumaUploadOutputsOperator):
        assert [link.name for link in operator.operator_extra_links] == ["Luma images"]
