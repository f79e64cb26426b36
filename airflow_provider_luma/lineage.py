"""
Lineage of stored Luma outputs: Asset events, hook-level lineage and OpenLineage facets.

The upload operator imports this module inside ``execute``, never at DAG parse. Everything here
works from :class:`StoredOutput` values (the URIs and checksums of the objects written) and the
generation's described request; nothing here does I/O on the objects.

OpenLineage is an optional extra (``apache-airflow-providers-openlineage``): only
:func:`openlineage_facets` imports it, and it raises ``ImportError`` when it is not installed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_luma.models import Layer

#: Namespace of OpenLineage datasets that stand for Luma generations (not a storage location).
LUMA_NAMESPACE = "luma"
#: Name of the custom OpenLineage run facet.
RUN_FACET_NAME = "luma_generation"


@dataclass(frozen=True)
class StoredOutput:
    """
    One output as it now exists in storage.

    :param index: the output's position in the generation's ``output`` list.
    :param uri: the stored image, as a plain URL (``s3://bucket/key``, ``file:///path``) without conn id.
    :param metadata_uri: the metadata record written next to it.
    :param sha256: hex digest of the stored bytes.
    :param size: bytes stored.
    :param content_type: the image's MIME type.
    :param skipped: the object was already there, identical, and was not written again.
    :param layer: the layer the output is, for a layering job (``None`` otherwise).
    """

    index: int
    uri: str
    metadata_uri: str
    sha256: str
    size: int
    content_type: str
    skipped: bool = False
    layer: Layer | None = None

    @property
    def layer_json(self) -> dict[str, Any] | None:
        return self.layer.to_json() if self.layer is not None else None

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "layer": self.layer_json,
            "uri": self.uri,
            "metadata_uri": self.metadata_uri,
            "sha256": self.sha256,
            "size": self.size,
            "content_type": self.content_type,
            "status": "skipped" if self.skipped else "written",
        }


@dataclass(frozen=True)
class GenerationLineage:
    """
    What lineage says about one upload: the generation, how it was asked for and what was stored.

    :param generation_id: the generation's id.
    :param model: the model that made it.
    :param type: ``image``, ``image_edit`` or ``layering``.
    :param created_at: when the API created it.
    :param request: the described request (no base64 bodies), or ``None`` when only an id was given.
    :param outputs: the stored outputs.
    :param estimated_cost_usd: the estimated cost of the whole generation (the generate task's
        figure, or the published price of the described request), or ``None`` when the request is
        unknown. It is per generation, not per output: an
        AssetAlias's per-object events all repeat it, so sum spend over distinct generation ids.
    """

    generation_id: str
    model: str
    type: str
    created_at: str
    request: Mapping[str, Any] | None
    outputs: Sequence[StoredOutput]
    estimated_cost_usd: float | None = None

    @property
    def layers(self) -> list[dict[str, Any]] | None:
        """The stored outputs' layers with their output index, or ``None`` when none is a layer."""
        layers = [
            {"output_index": out.index, **out.layer.to_json()}
            for out in self.outputs
            if out.layer is not None
        ]
        return layers or None

    @property
    def prompt_sha256(self) -> str | None:
        prompt = (self.request or {}).get("prompt")
        return hashlib.sha256(prompt.encode()).hexdigest() if isinstance(prompt, str) else None

    def asset_extra(self) -> dict[str, Any]:
        """
        Extra for an Asset event: ids and digests, small JSON; the prompt only as a hash.

        ``luma_estimated_cost_usd`` is the generation's, so a consumer can account for spend
        from the event alone, without reading the metadata records.
        """
        request = self.request or {}
        return {
            "luma_generation_id": self.generation_id,
            "luma_model": self.model,
            "luma_type": self.type,
            "luma_created_at": self.created_at,
            "luma_aspect_ratio": request.get("aspect_ratio"),
            "luma_prompt_sha256": self.prompt_sha256,
            "luma_estimated_cost_usd": self.estimated_cost_usd,
            "outputs": [
                {
                    "uri": out.uri,
                    "sha256": out.sha256,
                    "size": out.size,
                    "content_type": out.content_type,
                    "layer": out.layer_json,
                }
                for out in self.outputs
            ],
        }

    def output_extra(self, output: StoredOutput) -> dict[str, Any]:
        """Extra for the Asset of one stored object (added through an AssetAlias)."""
        extra = {key: value for key, value in self.asset_extra().items() if key != "outputs"}
        extra.update(
            sha256=output.sha256,
            size=output.size,
            content_type=output.content_type,
            metadata_uri=output.metadata_uri,
            layer=output.layer_json,
        )
        return extra

    def input_references(self) -> list[str]:
        """
        URIs of the images this generation was made from, as lineage inputs.

        References given as URLs are kept (without their query string); references to earlier
        generations become ``luma://generations/<id>``. Images sent inline (including files read
        from storage, which travel as base64) have no address here and are left out; their size
        and digest are in the metadata record.
        """
        request = self.request or {}
        refs: list[Any] = [request.get("source"), *(request.get("image_ref") or ())]
        uris = [uri for uri in (_reference_uri(ref) for ref in refs if isinstance(ref, Mapping)) if uri]
        return list(dict.fromkeys(uris))


def generation_uri(generation_id: str) -> str:
    return f"{LUMA_NAMESPACE}://generations/{generation_id}"


def _reference_uri(ref: Mapping[str, Any]) -> str | None:
    if ref.get("url"):
        return str(ref["url"])
    if ref.get("generation_id"):
        return generation_uri(str(ref["generation_id"]))
    if ref.get("file_id"):
        return f"{LUMA_NAMESPACE}://files/{ref['file_id']}"
    return None


def emit_asset_events(context: Context, outlets: Iterable[Any], lineage: GenerationLineage) -> None:
    """
    Attach the generation's metadata to the task's outlet events.

    A declared :class:`~airflow.sdk.Asset` gets the whole upload in its event's ``extra``; an
    :class:`~airflow.sdk.AssetAlias` gets one Asset per stored object, so per-run paths (which a
    DAG cannot declare up front) still become Assets that other DAGs can be scheduled on.
    """
    from airflow.sdk import Asset, AssetAlias

    outlets = list(outlets)
    if not outlets:
        return
    outlet_events = context["outlet_events"]
    for outlet in outlets:
        if isinstance(outlet, AssetAlias):
            for output in lineage.outputs:
                outlet_events[outlet].add(Asset(uri=output.uri), extra=lineage.output_extra(output))
        elif isinstance(outlet, Asset):
            outlet_events[outlet].extra.update(lineage.asset_extra())


def _hook_lineage_collector() -> Any:
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector
    except ImportError:  # Airflow 3.0 and 3.1 keep it in core
        from airflow.lineage.hook import get_hook_lineage_collector  # type: ignore[no-redef]
    return get_hook_lineage_collector()


def record_hook_lineage(hook: Any, lineage: GenerationLineage) -> None:
    """
    Tell Airflow's hook-level lineage collector what was read and written.

    The collector is a no-op unless a lineage reader plugin (such as OpenLineage's) is installed.
    Skipped outputs are reported too: the task still produced them for this run.
    """
    collector = _hook_lineage_collector()
    collector.add_input_asset(context=hook, uri=generation_uri(lineage.generation_id))
    for output in lineage.outputs:
        collector.add_output_asset(context=hook, uri=output.uri, asset_extra=lineage.output_extra(output))


def openlineage_dataset_name(uri: str) -> tuple[str, str]:
    """
    The OpenLineage ``(namespace, name)`` of a URI, by the OpenLineage naming conventions.

    ``file:///data/a.png`` -> ``("file", "/data/a.png")``; ``s3://bucket/k/a.png`` ->
    ``("s3://bucket", "k/a.png")``; ``https://host/a.png`` -> ``("https://host", "/a.png")``;
    ``luma://generations/<id>`` -> ``("luma", "generations/<id>")``.
    """
    parts = urlsplit(uri)
    if parts.scheme in ("", "file", "local"):
        return "file", parts.path
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}", parts.path or "/"
    if parts.scheme == LUMA_NAMESPACE:
        return LUMA_NAMESPACE, f"{parts.netloc}{parts.path}"
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


@cache
def _run_facet_class() -> type:
    """The custom run facet, built on first use because ``openlineage`` is an optional import."""
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class LumaGenerationRunFacet(RunFacet):  # type: ignore[misc]
        """
        The Luma generation behind a run: its id, model, type, a digest of the prompt, its cost.

        The prompt itself is not sent: lineage backends are not the place for user text. The cost is
        the estimate for the whole generation (``None``, left out of the event, when the request is
        unknown or Luma publishes no price for it), so a lineage backend can add up a pipeline's
        spend per run. ``layers`` (a layering job's, each with its ``output_index``; left out
        otherwise) say which stored object is which layer.
        """

        generation_id: str
        model: str
        type: str
        created_at: str
        prompt_sha256: str | None = None
        estimated_cost_usd: float | None = None
        layers: list[dict[str, Any]] | None = None

    return LumaGenerationRunFacet


def openlineage_facets(lineage: GenerationLineage) -> Any:
    """
    An ``OperatorLineage`` for the upload: source images in, stored objects out, a run facet.

    :raises ImportError: when the OpenLineage provider is not installed.
    """
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset

    def dataset(uri: str) -> Dataset:
        namespace, name = openlineage_dataset_name(uri)
        return Dataset(namespace=namespace, name=name)

    inputs = [dataset(uri) for uri in (generation_uri(lineage.generation_id), *lineage.input_references())]
    facet = _run_facet_class()(
        generation_id=lineage.generation_id,
        model=lineage.model,
        type=lineage.type,
        created_at=lineage.created_at,
        prompt_sha256=lineage.prompt_sha256,
        estimated_cost_usd=lineage.estimated_cost_usd,
        layers=lineage.layers,
    )
    return OperatorLineage(
        inputs=inputs,
        outputs=[dataset(output.uri) for output in lineage.outputs],
        run_facets={RUN_FACET_NAME: facet},
    )
