"""The provider's registration with Airflow; imported on every provider discovery, so it imports nothing."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager (hooks, connection type, config section)."""
    return {
        "package-name": "airflow-provider-luma",
        "name": "Luma",
        "description": "Generate and edit images with Luma's uni-1 model (Luma Agents API).",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Luma",
                "external-doc-url": "https://docs.agents.lumalabs.ai/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Luma", "python-modules": ["airflow_provider_luma.hooks.luma"]}],
        "operators": [
            {"integration-name": "Luma", "python-modules": ["airflow_provider_luma.operators.luma"]}
        ],
        "sensors": [{"integration-name": "Luma", "python-modules": ["airflow_provider_luma.sensors.luma"]}],
        "triggers": [{"integration-name": "Luma", "python-modules": ["airflow_provider_luma.triggers.luma"]}],
        "extra-links": ["airflow_provider_luma.links.luma.LumaImagesLink"],
        "plugins": [{"name": "luma", "plugin-class": "airflow_provider_luma.plugins.luma.LumaPlugin"}],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_luma.hooks.luma.LumaHook",
                "connection-type": "luma",
                "hook-name": "Luma",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"password": "API key", "host": "Base URL"},
                    "placeholders": {"host": "https://agents.lumalabs.ai/v1", "password": "luma-api-..."},
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Read timeout (s)",
                        "description": "Seconds to wait for the API to answer a request.",
                        "schema": {"type": ["number", "null"], "minimum": 0, "default": 60.0},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "description": "Seconds to wait for a connection to open.",
                        "schema": {"type": ["number", "null"], "minimum": 0, "default": 5.0},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries of a transient failure (POSTs only when nothing was queued).",
                        "schema": {"type": ["integer", "null"], "minimum": 0, "default": 5},
                    },
                    "max_rate_limit_wait": {
                        "label": "Max rate-limit wait (s)",
                        "description": "Total seconds one call may wait on 429 Retry-After before failing "
                        "with a rate-limit error.",
                        "schema": {"type": ["number", "null"], "minimum": 0, "default": 120.0},
                    },
                },
            }
        ],
        "config": {
            "luma": {
                "description": "Defaults for the Luma provider.",
                "options": {
                    "output_path": {
                        "description": "Where LumaUploadOutputsOperator stores images when a task names no "
                        "destination: an ObjectStoragePath URL such as s3://bucket/luma or file:///data/luma.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://marketing-assets/luma",
                        "default": "",
                    },
                    "initial_wait": {
                        "description": "Seconds LumaGenerateImageOperator waits after submitting before its "
                        "first status check, when a task sets no initial_wait (Luma's advice: about 20 s).",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "20",
                        "default": "20",
                    },
                    "poll_interval": {
                        "description": "Seconds between two status checks of a generation, when a task sets "
                        "no poll_interval (Luma's advice: 2 s).",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "2",
                        "default": "2",
                    },
                    "max_run_cost_usd": {
                        "description": "The most, in USD at list prices, that the Luma generate tasks of "
                        "one DAG run may submit together, when a task sets no max_run_cost_usd; empty "
                        "means no cap.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "5.00",
                        "default": "",
                    },
                    "output_conn_id": {
                        "description": "The Airflow connection used to reach ``output_path``.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "aws_default",
                        "default": "",
                    },
                },
            }
        },
    }
