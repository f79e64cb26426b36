"""The end-to-end modules' deployment: the Luma emulator, and the real Airflow services pointed at it."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from airflow_provider_luma.testing.airflow_services import AirflowServices

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_provider_luma.testing import LumaEmulator


@contextmanager
def luma_deployment(
    root: Path,
    emulator: LumaEmulator,
    *,
    dags_folder: Path,
    login: tuple[str, str] | None = None,
    **env: str,
) -> Iterator[AirflowServices]:
    """
    Start ``emulator``, then the four services on SQLite under ``root`` with the ``luma_default``
    connection pointing at it and ``[luma] output_path`` at ``root / "output"``; stop both after.

    :param env: more environment for the services (``AIRFLOW__LUMA__POLL_INTERVAL="0.5"``, say).
    """
    emulator.start()
    services = AirflowServices(
        home=root / "airflow-home",
        dags_folder=dags_folder,
        login=login,
        extra_env={
            "AIRFLOW_CONN_LUMA_DEFAULT": emulator.connection_json(),
            "AIRFLOW__LUMA__OUTPUT_PATH": (root / "output").as_uri(),
            **env,
        },
    )
    try:
        services.start()
        yield services
    finally:
        try:
            services.stop()
        finally:
            emulator.stop()
            # Shown by pytest only when a test of the module failed.
            print(services.log_tails())
