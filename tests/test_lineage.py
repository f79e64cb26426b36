"""Lineage of stored outputs: Asset extras, hook-level lineage and OpenLineage facets."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace

import pytest

from airflow_provider_luma import lineage
from airflow_provider_luma.lineage import GenerationLineage, StoredOutput, openlineage_dataset_name
from airflow_provider_luma.models import Layer

GENERATION_ID = "d290f1ee-6c54-4b01-90e6-d701748f0851"
SOURCE_ID = "0b7f6a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
PROMPT = "a lighthouse at dusk, poster style"
#: The edit above (a source and two references) from the price table.
COST_USD = 0.0464


def _lineage(outputs=None) -> GenerationLineage:
    request = {
        "prompt": PROMPT,
        "type": "image_edit",
        "model": "uni-1",
        "aspect_ratio": "2:3",
        "source": {"generation_id": SOURCE_ID},
        "image_ref": [
            {"url": "https://cdn.example.com/refs/palette.png"},
            {"media_type": "image/png", "bytes": 12, "sha256": "ab" * 32},
        ],
    }
    return GenerationLineage(
        generation_id=GENERATION_ID,
        model="uni-1",
        type="image_edit",
        created_at="2026-04-08T12:00:00Z",
        request=request,
        outputs=outputs
        or [
            StoredOutput(
                index=0,
                uri=f"s3://bucket/luma/{GENERATION_ID}-0.png",
                metadata_uri=f"s3://bucket/luma/{GENERATION_ID}-0.png.json",
                sha256="cd" * 32,
                size=1234,
                content_type="image/png",
            )
        ],
        estimated_cost_usd=COST_USD,
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///data/luma/a.png", ("file", "/data/luma/a.png")),
        ("s3://bucket/luma/a.png", ("s3://bucket", "luma/a.png")),
        ("gs://bucket/a.png", ("gs://bucket", "a.png")),
        ("https://cdn.example.com/refs/p.png", ("https://cdn.example.com", "/refs/p.png")),
        (f"luma://generations/{GENERATION_ID}", ("luma", f"generations/{GENERATION_ID}")),
    ],
)
def test_openlineage_names_follow_the_conventions(uri, expected):
    assert openlineage_dataset_name(uri) == expected


def test_asset_extra_has_the_generation_but_only_a_hash_of_the_prompt():
    extra = _lineage().asset_extra()

    assert extra["luma_generation_id"] == GENERATION_ID
    assert extra["luma_model"] == "uni-1"
    assert extra["luma_aspect_ratio"] == "2:3"
    assert extra["luma_prompt_sha256"] == hashlib.sha256(PROMPT.encode()).hexdigest()
    assert extra["outputs"] == [
        {
            "uri": f"s3://bucket/luma/{GENERATION_ID}-0.png",
            "sha256": "cd" * 32,
            "size": 1234,
            "content_type": "image/png",
            "layer": None,
        }
    ]
    assert PROMPT not in json.dumps(extra)


def test_input_references_keep_urls_and_generation_ids_and_drop_inline_images():
    assert _lineage().input_references() == [
        f"luma://generations/{SOURCE_ID}",
        "https://cdn.example.com/refs/palette.png",
    ]


def test_bare_id_lineage_has_no_request_parts():
    bare = GenerationLineage(GENERATION_ID, "uni-1", "image", "2026-04-08Z", None, _lineage().outputs)
    assert bare.input_references() == []
    assert bare.asset_extra()["luma_prompt_sha256"] is None
    assert bare.asset_extra()["luma_estimated_cost_usd"] is None
    assert bare.output_extra(bare.outputs[0])["luma_estimated_cost_usd"] is None


def test_every_extra_carries_the_generations_cost_once_per_generation():
    two_outputs = _lineage().outputs[0], replace(_lineage().outputs[0], index=1, uri="s3://bucket/luma/1.png")
    both = replace(_lineage(), outputs=two_outputs)

    assert both.asset_extra()["luma_estimated_cost_usd"] == COST_USD
    # Each object's Asset repeats the generation's figure: it is not split over the outputs.
    assert [both.output_extra(output)["luma_estimated_cost_usd"] for output in two_outputs] == [COST_USD] * 2


def test_openlineage_facets_report_sources_outputs_and_run_facet():
    result = lineage.openlineage_facets(_lineage())

    assert [(d.namespace, d.name) for d in result.inputs] == [
        ("luma", f"generations/{GENERATION_ID}"),
        ("luma", f"generations/{SOURCE_ID}"),
        ("https://cdn.example.com", "/refs/palette.png"),
    ]
    assert [(d.namespace, d.name) for d in result.outputs] == [("s3://bucket", f"luma/{GENERATION_ID}-0.png")]
    facet = result.run_facets[lineage.RUN_FACET_NAME]
    assert (facet.generation_id, facet.model, facet.type) == (GENERATION_ID, "uni-1", "image_edit")
    assert facet.prompt_sha256 == hashlib.sha256(PROMPT.encode()).hexdigest()
    assert facet.estimated_cost_usd == COST_USD
    # It serialises the way the OpenLineage client sends it, without the prompt.
    from openlineage.client.serde import Serde

    serialised = Serde.to_json(facet)
    assert GENERATION_ID in serialised
    assert json.loads(serialised)["estimated_cost_usd"] == COST_USD
    assert PROMPT not in serialised
    # An unknown cost is left out of the event rather than sent as a guess.
    bare = lineage.openlineage_facets(replace(_lineage(), request=None, estimated_cost_usd=None))
    assert "estimated_cost_usd" not in json.loads(Serde.to_json(bare.run_facets[lineage.RUN_FACET_NAME]))


def test_openlineage_facets_need_the_optional_provider(monkeypatch):
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)
    with pytest.raises(ImportError):
        lineage.openlineage_facets(_lineage())


def test_hook_lineage_collector_receives_the_generation_and_the_objects(monkeypatch):
    try:
        from airflow.sdk.lineage import HookLineageCollector
    except ImportError:  # Airflow < 3.2
        from airflow.lineage.hook import HookLineageCollector  # type: ignore[no-redef]

    collector = HookLineageCollector()
    monkeypatch.setattr(lineage, "_hook_lineage_collector", lambda: collector)
    hook = object()

    lineage.record_hook_lineage(hook, _lineage())

    collected = collector.collected_assets
    assert [info.asset.uri for info in collected.inputs] == [f"luma://generations/{GENERATION_ID}"]
    assert [info.asset.uri for info in collected.outputs] == [f"s3://bucket/luma/{GENERATION_ID}-0.png"]
    assert collected.outputs[0].asset.extra["sha256"] == "cd" * 32
    assert collected.outputs[0].context is hook


# ------------------------------------------------------------------------------------- layering

LAYERS = (Layer(0, "fox", "A fox in the foreground", "soft"), Layer(1, "background", "The scene", "none"))


def _layered() -> GenerationLineage:
    outputs = [
        StoredOutput(
            index=i,
            uri=f"s3://bucket/luma/{GENERATION_ID}/{i:02d}-{layer.label}.png",
            metadata_uri=f"s3://bucket/luma/{GENERATION_ID}/{i:02d}-{layer.label}.png.json",
            sha256=f"{i}" * 64,
            size=100 + i,
            content_type="image/png",
            layer=layer,
        )
        for i, layer in enumerate(LAYERS)
    ]
    request = {"type": "layering", "model": "uni-1", "source": {"url": "https://cdn.example.com/poster.png"}}
    return GenerationLineage(GENERATION_ID, "uni-1", "layering", "2026-04-08Z", request, outputs)


def test_each_stored_layer_says_which_layer_it_is_in_the_manifest_and_the_extras():
    layered = _layered()
    fox, background = (layer.to_json() for layer in LAYERS)
    assert [output.manifest_entry()["layer"] for output in layered.outputs] == [fox, background]
    assert [output["layer"] for output in layered.asset_extra()["outputs"]] == [fox, background]
    assert layered.output_extra(layered.outputs[1])["layer"] == background
    # An output that is no layer says so, in the same place.
    assert _lineage().outputs[0].manifest_entry()["layer"] is None
    assert _lineage().output_extra(_lineage().outputs[0])["layer"] is None


def test_the_run_facet_lists_the_layers_and_leaves_them_out_for_an_image():
    from openlineage.client.serde import Serde

    facet = lineage.openlineage_facets(_layered()).run_facets[lineage.RUN_FACET_NAME]
    sent = json.loads(Serde.to_json(facet))
    assert sent["layers"] == [
        {"output_index": 0, **LAYERS[0].to_json()},
        {"output_index": 1, **LAYERS[1].to_json()},
    ]
    # No published price for layering: the cost is left out, not sent as a guess.
    assert "estimated_cost_usd" not in sent
    image = lineage.openlineage_facets(_lineage()).run_facets[lineage.RUN_FACET_NAME]
    assert "layers" not in json.loads(Serde.to_json(image))
