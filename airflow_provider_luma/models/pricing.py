"""
What a generation costs at Luma's published pay-as-you-go prices, from the request alone.

Every figure is an estimate (Luma's invoice is the truth), and a request the table cannot price gets
``None``, never a guess: a spend report or a run's cap would rather know that it does not know.
``type="layering"`` is such a request: Luma publishes no per-layer price (only that ``2k`` costs
more per layer than ``1k``), and the number of layers is the server's choice.

The run's accounting built on these figures lives in :mod:`airflow_provider_luma.spend`; the table
stays here, beside the request, so that a request can price itself without importing upwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The generation types the published table prices.
PRICED_TYPES: tuple[str, ...] = ("image", "image_edit")
#: Published pay-as-you-go prices in USD per image (2K output): (no input image, first input image).
_BASE_PRICE_USD: dict[str, tuple[float, float]] = {"uni-1": (0.0404, 0.0434), "uni-1-max": (0.1000, 0.1030)}
#: Each input image after the first adds this much.
_PRICE_PER_EXTRA_IMAGE_USD = 0.0030


def estimate_cost_usd(model: str, input_image_count: int) -> float:
    """Price of one image from the published table: a base per model, plus per extra input image."""
    text_only, first_image = _BASE_PRICE_USD[model]
    if input_image_count == 0:
        return text_only
    return round(first_image + _PRICE_PER_EXTRA_IMAGE_USD * (input_image_count - 1), 4)


def published_price_usd(model: object, generation_type: object, input_image_count: int) -> float | None:
    """The published price of a request, or ``None`` when the table has none for its model or type."""
    if model not in _BASE_PRICE_USD or generation_type not in PRICED_TYPES:
        return None
    return estimate_cost_usd(str(model), input_image_count)


def estimate_cost_of_described(described: Mapping[str, Any]) -> float | None:
    """
    The published price of a request known only by its description (``GenerationRequest.describe()``).

    The description is what outlives the task that submitted the request (the generate operator's
    XCom, a metadata record), so this is how later tasks price a generation. Every input image is
    priced: the references and an edit's source. ``None`` when the description names no model or
    type the table prices (a hand-written dict, a layering job).
    """
    input_images = len(described.get("image_ref") or ()) + (1 if described.get("source") else 0)
    # A description always names its type; a hand-written one without it means the API's default.
    return published_price_usd(described.get("model"), described.get("type", "image"), input_images)
