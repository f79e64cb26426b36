"""
The provider's operators under the module path Airflow providers use (``operators/<service>.py``).

Each operator lives in a module of its own: :mod:`.generate` (make the image) and :mod:`.upload`
(keep it).
"""

from __future__ import annotations

from airflow_provider_luma.operators.generate import LumaGenerateImageOperator
from airflow_provider_luma.operators.upload import LumaUploadOutputsOperator

__all__ = ["LumaGenerateImageOperator", "LumaUploadOutputsOperator"]
