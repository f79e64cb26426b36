"""
The provider's registration with Airflow, and the promise that importing the provider stays light.

``get_provider_info()`` is what Airflow's ProvidersManager reads through the ``apache_airflow_provider``
entry point; a typo in it silently hides the connection type or the config section. DAG files import the
operators on every parse, so the modules they import must not pull in the emulator's server stack, the
storage back-ends or OpenLineage: those belong inside the functions that need them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import airflow_provider_luma
from airflow_provider_luma.get_provider_info import get_provider_info

DISTRIBUTION = "airflow-provider-luma"
# Modules a DAG file reaches when it imports the provider's public classes.
PUBLIC_MODULES = (
    "airflow_provider_luma.hooks.luma",
    "airflow_provider_luma.triggers.luma",
    "airflow_provider_luma.sensors.luma",
    "airflow_provider_luma.operators.luma",
    "airflow_provider_luma.storage",
    "airflow_provider_luma.lineage",
    "airflow_provider_luma.models",
    "airflow_provider_luma.exceptions",
)
# Top-level packages that must only ever be imported lazily (inside the function that needs them).
HEAVY_PACKAGES = (
    "openlineage",
    "airflow.providers.openlineage",
    "airflow.providers.amazon",
    "s3fs",
    "boto3",
    "botocore",
    "aiobotocore",
    "uvicorn",
    "starlette",
    "fastapi",
    "PIL",
    "luma_agents",
    "moto",
    "airflow_provider_luma.testing",
)


@pytest.fixture(scope="module")
def info() -> dict[str, Any]:
    return get_provider_info()


def test_entry_point_leads_to_get_provider_info() -> None:
    """Airflow finds providers through this entry point only; the installed metadata must carry it."""
    (entry_point,) = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.dist is not None and ep.dist.name == DISTRIBUTION
    ]
    assert entry_point.load() is get_provider_info


def test_names_and_version_match_the_distribution(info: dict[str, Any]) -> None:
    assert info["package-name"] == DISTRIBUTION
    assert info["versions"][0] == airflow_provider_luma.__version__


def test_valid_against_the_installed_airflow_schema(info: dict[str, Any]) -> None:
    """Airflow ships the JSON schema it validates provider info against; use the installed one."""
    jsonschema = pytest.importorskip("jsonschema")
    schema_file = importlib.resources.files("airflow") / "provider_info.schema.json"
    if not schema_file.is_file():
        pytest.skip("this Airflow ships no provider_info.schema.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    jsonschema.validate(info, schema)


def test_declared_modules_exist(info: dict[str, Any]) -> None:
    """Every module named for hooks, operators, sensors and triggers imports."""
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(section, []):
            for module in entry["python-modules"]:
                importlib.import_module(module)


def test_connection_type_names_the_hook_that_declares_it(info: dict[str, Any]) -> None:
    (connection,) = info["connection-types"]
    module_name, _, class_name = connection["hook-class-name"].rpartition(".")
    hook_class = getattr(importlib.import_module(module_name), class_name)
    assert connection["connection-type"] == hook_class.conn_type == "luma"
    assert hook_class.default_conn_name == "luma_default"


def test_config_section_is_complete(info: dict[str, Any]) -> None:
    """Airflow's config loader needs description, type, example, default and version_added on each option."""
    options = info["config"]["luma"]["options"]
    assert {"output_path", "output_conn_id"} <= set(options)
    for name, option in options.items():
        missing = {"description", "type", "example", "default", "version_added"} - set(option)
        assert not missing, f"[luma] {name} lacks {sorted(missing)}"


def test_config_timing_defaults_are_the_ones_the_code_uses(info: dict[str, Any]) -> None:
    """The [luma] defaults Airflow shows (``airflow config list``) are the ones a task falls back to."""
    from airflow_provider_luma import polling

    options = info["config"]["luma"]["options"]
    assert float(options["initial_wait"]["default"]) == polling.DEFAULT_INITIAL_WAIT
    assert float(options["poll_interval"]["default"]) == polling.DEFAULT_POLL_INTERVAL


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=240,
        check=False,
    )


def test_get_provider_info_imports_nothing() -> None:
    """ProvidersManager imports it for every installed provider, in every Airflow process."""
    result = _run_python(
        textwrap.dedent(
            """
            import sys
            import airflow_provider_luma.get_provider_info
            loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"airflow", "httpx", "pendulum"})
            print(",".join(loaded))
            """
        )
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_public_modules_import_no_heavy_packages() -> None:
    """
    Import Airflow's own base classes first (they are paid for by any DAG file), then each provider module,
    and record which heavy packages each one added.
    """
    result = _run_python(
        textwrap.dedent(
            f"""
            import importlib, json, sys
            import httpx
            import airflow.sdk
            from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator
            import airflow.triggers.base
            heavy = {HEAVY_PACKAGES!r}
            def is_heavy(name):
                return any(name == p or name.startswith(p + ".") for p in heavy)
            before = set(sys.modules)
            report = {{}}
            for module in {PUBLIC_MODULES!r}:
                importlib.import_module(module)
                added = set(sys.modules) - before
                before |= added
                report[module] = sorted(name for name in added if is_heavy(name))
            print(json.dumps(report))
            """
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    offenders = {module: heavy for module, heavy in report.items() if heavy}
    assert not offenders, f"imported eagerly: {offenders}"
