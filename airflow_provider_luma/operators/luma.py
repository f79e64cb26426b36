"""
The provider's operators under the module path Airflow providers use (``operators/<service>.py``).

Each operator lives in a module of its own: :mod:`.generate` (make the image), :mod:`.upload`
(keep it) and :mod:`.spend` (what the run spent).
"""

from __future__ import annotations

from airflow_provider_luma.operators.generate import LumaGenerateImageOperator
from airflow_provider_luma.operators.spend import LumaRunSpendOperator
from airflow_provider_luma.operators.upload import LumaUploadOutputsOperator

__all__ = ["LumaGenerateImageOperator", "LumaRunSpendOperator", "LumaUploadOutputsOperator"]
