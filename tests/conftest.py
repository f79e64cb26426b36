"""
Session set-up shared by every test: a private AIRFLOW_HOME on SQLite, set before Airflow is imported.

The metadata database is migrated once per session, and only when a test asks for it through the
``airflow_db`` fixture, so unit tests of the hook or the models stay fast. Also here, as they serve
several folders: moto's S3 server on 127.0.0.1 (``s3_server``, ``s3``), the real OpenLineage
listener writing to a file (``openlineage_events``) and a fresh folder as the deployment's storage
(``output_path``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import AWS_CONN_ID, BUCKET, S3Server, use_output_folder

if TYPE_CHECKING:
    from collections.abc import Iterator

# tests.browser: the headless Chromium fixtures (chromium, browser_page).
pytest_plugins = ["tests.fakes", "tests.browser"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="luma-tests-airflow-home-"))

os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
# dag.test() needs its DAG file inside the dags folder; tests.support.run_dag points it at the
# folder of the DAG it runs.
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "tests" / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ.pop("LUMA_AGENTS_API_KEY", None)


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """A migrated metadata database for tests that run DAGs; yields AIRFLOW_HOME."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        capture_output=True,
    )
    yield _AIRFLOW_HOME


@pytest.fixture
def output_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The deployment's storage for the run: ``[luma] output_path`` pointed at a fresh folder."""
    return use_output_folder(monkeypatch, tmp_path / "outputs")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 on an ephemeral port, reachable through the Airflow connection ``aws_test``."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    os.environ[f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1"},
        }
    )
    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    try:
        yield S3Server(endpoint_url=endpoint_url, client=client)
    finally:
        os.environ.pop(f"AIRFLOW_CONN_{AWS_CONN_ID.upper()}", None)
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The S3 server with an empty bucket."""
    s3_server.empty()
    yield s3_server
    s3_server.empty()


@pytest.fixture
def openlineage_events(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """
    The real OpenLineage listener, configured by environment, writing its events to a JSON-lines file.

    The provider's plugin decides whether it has a listener when it is first imported, which is the
    first DAG run of the session, under whatever configuration that run saw; and the task runner's
    listener manager is cached per process. So the listener is registered here, built under this
    test's configuration, in place of any registered before, and the previous set is put back after.
    Emission runs in a thread rather than a fork: pytest's process has the emulator's server thread.
    """
    from airflow.providers.openlineage.plugins.listener import OpenLineageListener

    try:
        from airflow.sdk.listener import get_listener_manager
    except ImportError:  # Airflow < 3.2: the task runner uses core's manager
        from airflow.listeners.listener import get_listener_manager

    events_file = tmp_path / "openlineage" / "events.jsonl"
    events_file.parent.mkdir()
    transport = {"type": "file", "log_file_path": str(events_file), "append": True}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "luma-tests")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    manager = get_listener_manager()
    previous = [plugin for plugin in manager.pm.get_plugins() if isinstance(plugin, OpenLineageListener)]
    for plugin in previous:
        manager.pm.unregister(plugin)
    listener = OpenLineageListener()
    manager.add_listener(listener)
    yield events_file
    manager.pm.unregister(listener)
    for plugin in previous:
        manager.add_listener(plugin)
