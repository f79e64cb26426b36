"""
The provider's operators under the module path Airflow providers use (``operators/<service>.py``).

Each operator lives in a module of its own: :mod:`.generate` (make the image), :mod:`.upload`
(keep it), :mod:`.promote` (publish approved images from staging), :mod:`.manifest` (announce a
run's images as one batch), :mod:`.gallery` (show a batch on a page) and :mod:`.spend` (what the
run spent).
"""

from __future__ import annotations

from airflow_provider_luma.operators.gallery import LumaGalleryOperator
from airflow_provider_luma.operators.generate import LumaGenerateImageOperator
from airflow_provider_luma.operators.manifest import LumaPublishManifestOperator
from airflow_provider_luma.operators.promote import LumaPromoteOutputsOperator
from airflow_provider_luma.operators.spend import LumaRunSpendOperator
from airflow_provider_luma.operators.upload import LumaUploadOutputsOperator

__all__ = [
    "LumaGalleryOperator",
    "LumaGenerateImageOperator",
    "LumaPromoteOutputsOperator",
    "LumaPublishManifestOperator",
    "LumaRunSpendOperator",
    "LumaUploadOutputsOperator",
]
