"""
The Luma view's API through Airflow's own app and test client: the plugin is found through the
package's entry points, mounted at ``/luma``, and answers only callers Airflow authenticated, with
only the images of DAGs the auth manager lets them read.

The simple auth manager lets every role read every DAG, so "a DAG this user may not read" is the
auth manager's answer replaced for one user: the view must ask it, and obey.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import store_output

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from fastapi.testclient import TestClient

SECRET_DAG = "payroll_visuals"
PUBLIC_DAG = "luma_marketing_refresh"


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "luma"
    for name, dag_id, prompt, day in [
        ("spring/20261201T000000/a.png", PUBLIC_DAG, "a mug <b>bold</b>", 1),
        ("spring/20261202T000000/b.png", PUBLIC_DAG, "a tote bag", 2),
        ("hr/c.png", SECRET_DAG, "the secret poster", 3),
    ]:
        generation_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name))
        written_at = f"2026-12-0{day}T10:00:00+00:00"
        store_output(
            root, name, generation_id=generation_id, prompt=prompt, dag_id=dag_id, written_at=written_at
        )
    # A JSON file beside nothing, and a manifest: neither is an image's record.
    (root / "spring" / "stray.png.json").write_text(json.dumps({"generation_id": "x", "uri": "file:///etc"}))
    (root / "spring" / "manifest.json").write_text("{}")
    monkeypatch.setenv("AIRFLOW__LUMA__OUTPUT_PATH", root.as_uri())
    return root


@pytest.fixture
def client(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    # Airflow 3.1 leaves the issuer unset, which the PyJWT it is installed with refuses to sign.
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_ISSUER", "luma-tests")
    with TestClient(create_app("core")) as test_client:
        yield test_client


def _auth(role: str = "viewer", username: str = "viewer") -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def no_secret_dag_for_viewer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The auth manager lets the user "viewer" read every DAG but ``SECRET_DAG``."""
    from airflow.api_fastapi.app import get_auth_manager

    manager = type(get_auth_manager())
    original = manager.filter_authorized_dag_ids

    def filtered(self: Any, *, dag_ids: set[str], user: Any, **kwargs: Any) -> set[str]:
        allowed = original(self, dag_ids=dag_ids, user=user, **kwargs)
        return allowed - {SECRET_DAG} if user.get_name() == "viewer" else allowed

    monkeypatch.setattr(manager, "filter_authorized_dag_ids", filtered)


@pytest.mark.usefixtures("storage")
@pytest.mark.parametrize("path", ["/luma/api/images", "/luma/images/spring/20261201T000000/a.png"])
def test_nothing_without_a_login(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert b"PNG" not in response.content


@pytest.mark.usefixtures("storage")
def test_the_page_sends_a_visitor_without_a_session_to_log_in(client: TestClient) -> None:
    response = client.get("/luma/", follow_redirects=False)
    assert response.status_code == 303
    assert "/auth/" in response.headers["location"] and "login" in response.headers["location"]


@pytest.mark.usefixtures("storage")
def test_an_authorized_user_sees_every_image_newest_first(client: TestClient) -> None:
    body = client.get("/luma/api/images", headers=_auth()).json()
    assert [image["path"] for image in body["images"]] == [
        "hr/c.png",
        "spring/20261202T000000/b.png",
        "spring/20261201T000000/a.png",
    ]
    first = body["images"][2]
    assert first["prompt"] == "a mug <b>bold</b>" and first["aspect_ratio"] == "9:16"
    assert first["dag_id"] == PUBLIC_DAG and first["map_index"] == 0
    assert first["image_url"] == "images/spring/20261201T000000/a.png"
    # Nothing that points outside the api-server: no storage URI, no presigned URL.
    assert "file://" not in json.dumps(body)


@pytest.mark.usefixtures("storage", "no_secret_dag_for_viewer")
def test_a_user_sees_only_the_dags_they_may_read(client: TestClient) -> None:
    viewer = client.get("/luma/api/images", headers=_auth()).json()
    assert {image["dag_id"] for image in viewer["images"]} == {PUBLIC_DAG}
    page = client.get("/luma/", headers=_auth())
    assert page.status_code == 200 and "the secret poster" not in page.text
    # Not there and not yours look alike.
    assert client.get("/luma/images/hr/c.png", headers=_auth()).status_code == 404
    assert client.get("/luma/images/hr/missing.png", headers=_auth()).status_code == 404
    # Another user, whom the auth manager lets read it, gets it.
    admin = _auth(role="admin", username="admin")
    assert client.get("/luma/images/hr/c.png", headers=admin).status_code == 200


def test_an_image_is_streamed_with_its_type_and_bytes(client: TestClient, storage: Path) -> None:
    response = client.get("/luma/images/spring/20261202T000000/b.png", headers=_auth())
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (storage / "spring/20261202T000000/b.png").read_bytes()


@pytest.mark.usefixtures("storage")
@pytest.mark.parametrize(
    "path",
    [
        # Encoded, so that the client sends the dots and the route sees them.
        "/luma/images/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/luma/images/spring/%2e%2e%2f%2e%2e%2fhr/c.png",
        "/luma/images/spring/stray.png",  # a JSON beside it names another object
        "/luma/images/spring/manifest",
    ],
)
def test_only_recorded_images_under_the_storage_can_be_read(client: TestClient, path: str) -> None:
    assert client.get(path, headers=_auth()).status_code == 404


@pytest.mark.usefixtures("storage")
def test_the_page_shows_prompts_as_text_and_filters_by_dag_and_date(client: TestClient) -> None:
    page = client.get("/luma/", headers=_auth(), params={"dag_id": PUBLIC_DAG, "since": "2026-12-02"})
    assert page.status_code == 200
    assert "a tote bag" in page.text and "a mug" not in page.text and "secret" not in page.text
    assert 'src="images/spring/20261202T000000/b.png"' in page.text
    everything = client.get("/luma/", headers=_auth()).text
    assert "a mug &lt;b&gt;bold&lt;/b&gt;" in everything and "<b>bold</b>" not in everything


def test_the_ui_lists_the_view(client: TestClient) -> None:
    plugins = client.get("/api/v2/plugins", headers=_auth(role="admin", username="admin")).json()
    [luma] = [plugin for plugin in plugins["plugins"] if plugin["name"] == "luma"]
    [view] = luma["external_views"]
    assert view["href"] == "luma/" and view["destination"] == "nav"
    assert luma["fastapi_apps"][0]["url_prefix"] == "/luma"


@pytest.mark.usefixtures("storage")
def test_a_task_link_shows_only_its_generation(client: TestClient) -> None:
    every = client.get("/luma/api/images", headers=_auth()).json()["images"]
    tote = next(image for image in every if image["prompt"] == "a tote bag")
    filters = {"dag_id": PUBLIC_DAG, "run_id": "manual__1", "generation_id": tote["generation_id"]}
    linked = client.get("/luma/api/images", headers=_auth(), params=filters).json()["images"]
    assert [image["path"] for image in linked] == [tote["path"]]
    # The page keeps the link's filters when the date filter is used.
    page = client.get("/luma/", headers=_auth(), params=filters).text
    assert f'name="generation_id" value="{tote["generation_id"]}"' in page
    assert client.get("/luma/api/images", headers=_auth(), params={"run_id": "other"}).json()["images"] == []
