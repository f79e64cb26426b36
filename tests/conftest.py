"""
Session set-up shared by every test: a private AIRFLOW_HOME on SQLite, set before Airflow is imported.

The metadata database is migrated once per session, and only when a test asks for it through the
``airflow_db`` fixture, so unit tests of the hook or the models stay fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest_plugins = ["tests.fakes"]

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
