"""Apache Airflow provider for Luma's uni-1 image generation (the Luma Agents API)."""

from __future__ import annotations

__version__ = "0.1.0"
