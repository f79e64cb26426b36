"""The official SDK against the emulator, the HTTP control plane, ``python -m`` and the pytest fixtures."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import luma_agents
import pytest
from PIL import Image

from airflow_provider_luma.testing import Fault, LumaEmulator


def test_sdk_round_trip(sdk: luma_agents.Luma) -> None:
    created = sdk.generations.create(
        prompt="a red fox", aspect_ratio="2:3", output_format="jpeg", user_id=None
    )
    assert created.state == "queued"
    deadline = time.monotonic() + 10
    generation = sdk.generations.get(created.id)
    while generation.state not in ("completed", "failed"):
        assert time.monotonic() < deadline, "generation never finished"
        generation = sdk.generations.get(created.id)
    assert generation.state == "completed"
    assert generation.output is not None
    image = Image.open(io.BytesIO(httpx.get(generation.output[0].url).content))
    assert (image.format, image.size) == ("JPEG", (43, 64))


def test_sdk_edit_with_image_ref_nulls(sdk: luma_agents.Luma, luma_emulator: LumaEmulator) -> None:
    first = sdk.generations.create(prompt="x", aspect_ratio="3:1")
    edit = sdk.generations.create(
        prompt="make it blue",
        type="image_edit",
        source={"generation_id": first.id},
        image_ref=[{"url": "https://example.com/ref.png", "data": None}],
        aspect_ratio=None,
    )
    luma_emulator.set_state(edit.id, "completed")
    generation = sdk.generations.get(edit.id)
    assert generation.output is not None
    assert Image.open(io.BytesIO(httpx.get(generation.output[0].url).content)).size == (64, 21)


def test_sdk_raw_response_exposes_rate_limit_headers(sdk: luma_agents.Luma) -> None:
    raw = sdk.generations.with_raw_response.create(prompt="x")
    assert raw.http_response.status_code == 201
    assert raw.headers["X-RateLimit-Limit"] == "30"
    assert raw.parse().state == "queued"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, luma_agents.BadRequestError),
        (401, luma_agents.AuthenticationError),
        (402, luma_agents.APIStatusError),
        (403, luma_agents.PermissionDeniedError),
        (404, luma_agents.NotFoundError),
        (413, luma_agents.APIStatusError),
        (422, luma_agents.UnprocessableEntityError),
        (429, luma_agents.RateLimitError),
        (500, luma_agents.InternalServerError),
        (502, luma_agents.InternalServerError),
        (503, luma_agents.InternalServerError),
    ],
)
def test_sdk_exception_per_status(
    sdk: luma_agents.Luma, luma_emulator: LumaEmulator, status: int, error: type[Exception]
) -> None:
    luma_emulator.add_fault(Fault(method="POST", status=status))
    with pytest.raises(error) as raised:
        sdk.generations.create(prompt="x")
    assert type(raised.value) is error
    assert raised.value.status_code == status  # type: ignore[attr-defined]
    assert set(raised.value.body) == {"detail"}  # type: ignore[attr-defined]


def test_sdk_sees_real_validation_and_not_found(sdk: luma_agents.Luma) -> None:
    with pytest.raises(luma_agents.BadRequestError, match="Unknown model"):
        sdk.generations.create(prompt="x", model="ray-9")  # type: ignore[arg-type]
    with pytest.raises(luma_agents.NotFoundError):
        sdk.generations.get("d290f1ee-6c54-4b01-90e6-d701748f0851")


def test_sdk_connection_error_on_drop(sdk: luma_agents.Luma, luma_emulator: LumaEmulator) -> None:
    luma_emulator.add_fault(Fault(method="POST", kind="drop"))
    with pytest.raises(luma_agents.APIConnectionError):
        sdk.generations.create(prompt="x")


def test_control_plane(luma_emulator: LumaEmulator, api: httpx.Client) -> None:
    control = httpx.Client(base_url=f"{luma_emulator.root_url}/_emulator")
    generation_id = api.post("/generations", json={"prompt": "x"}).json()["id"]

    stats = control.get("/stats").json()
    assert stats["generations_created"] == 1
    assert stats["requests"] == {"POST /v1/generations": 1}
    assert stats["generations"][0]["id"] == generation_id

    assert (
        control.post("/set_state", json={"generation_id": generation_id, "state": "completed"}).status_code
        == 200
    )
    body = api.get(f"/generations/{generation_id}").json()
    assert body["state"] == "completed"
    assert control.post("/set_state", json={"generation_id": "nope", "state": "completed"}).status_code == 404
    assert (
        control.post("/set_state", json={"generation_id": generation_id, "state": "odd"}).status_code == 400
    )

    assert control.post("/expire_output_urls").status_code == 200
    assert httpx.get(body["output"][0]["url"]).status_code == 403

    faults = [{"method": "POST", "status": 503, "times": 2}, {"method": "GET", "kind": "malformed"}]
    assert len(control.post("/faults", json=faults).json()["faults"]) == 2
    assert control.post("/faults", json={"method": "POST", "kind": "nonsense"}).status_code == 400
    assert [api.post("/generations", json={"prompt": "x"}).status_code for _ in range(3)] == [503, 503, 201]

    assert control.post("/fail_next", json={"code": "content_moderated"}).json() == {"planned": 1}
    control.post("/configure", json={"processing_seconds": 0, "queued_seconds": 0})
    failed_id = api.post("/generations", json={"prompt": "x"}).json()["id"]
    api.get(f"/generations/{failed_id}")  # the malformed GET
    assert api.get(f"/generations/{failed_id}").json()["failure_code"] == "content_moderated"

    assert control.post("/reset").status_code == 200
    assert control.get("/stats").json()["generations_created"] == 0
    control.close()


def test_luma_connection_fixture(luma_connection: str, luma_emulator: LumaEmulator) -> None:
    assert luma_connection == "luma_default"
    connection = json.loads(os.environ["AIRFLOW_CONN_LUMA_DEFAULT"])
    assert connection == {
        "conn_type": "luma",
        "host": luma_emulator.base_url,
        "password": luma_emulator.api_key,
    }


def test_luma_emulator_fixture_starts_clean(luma_emulator: LumaEmulator) -> None:
    assert luma_emulator.stats.generations_created == 0
    assert luma_emulator.pending_faults() == []
    assert luma_emulator.base_url.startswith("http://127.0.0.1:")
    assert luma_emulator.api_key.startswith("luma-api-")


def test_plugin_import_is_light() -> None:
    code = (
        "import sys, airflow_provider_luma.testing.pytest_plugin;"
        "print(sorted(m for m in ('uvicorn', 'starlette', 'airflow') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_emulator_imports_nothing_from_the_product() -> None:
    code = (
        "import sys, runpy; from airflow_provider_luma.testing import LumaEmulator, Fault;"
        "import airflow_provider_luma.testing.app, airflow_provider_luma.testing.__main__;"
        "print(sorted(m for m in sys.modules if m.startswith('airflow_provider_luma')"
        " and not m.startswith('airflow_provider_luma.testing') and m != 'airflow_provider_luma'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_python_m_serves_until_interrupted(stop_signal: signal.Signals) -> None:
    # Started with SIGINT ignored, as a shell starts a background job (and as CI may run us).
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_luma.testing",
            "--long-edge",
            "32",
            "--queued-seconds",
            "0",
            # A switch: argparse's type=bool would have read any value as True.
            "--allow-loopback-urls",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split(": ", 1)[1].strip()
        api_key = process.stdout.readline().split(": ", 1)[1].strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        loopback = {"prompt": "x", "image_ref": [{"url": "http://127.0.0.1/a.png"}]}
        response = httpx.post(
            f"{base_url}/generations", json=loopback, headers={"Authorization": f"Bearer {api_key}"}
        )
        assert response.status_code == 201, response.text
        process.send_signal(stop_signal)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(f"the emulator did not stop on {stop_signal.name}; its stderr ends: {stderr[-2000:]}")
        assert code == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
