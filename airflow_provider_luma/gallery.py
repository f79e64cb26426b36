"""
The gallery: one static HTML page showing a batch's images with what made each of them.

People judge generated images by looking at them, so the page shows every image of a manifest with
the facts a reviewer asks about: the prompt, model, aspect ratio, checksum, estimated cost and the
Airflow task that made it. It is built from the metadata records (the manifest only points at
them), and is self-contained: inline CSS, no script, no resource from elsewhere, image links
relative to the page wherever the page and the image share a store, so the folder can be opened
from disk, served by any static host or copied whole. Every text from a record is HTML-escaped: a
prompt is user input.
"""

from __future__ import annotations

import html
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_luma.manifest import Manifest, ManifestImage

#: How wide a thumbnail is drawn; the full image is one click away.
THUMBNAIL_PX = 320


@dataclass(frozen=True)
class GalleryImage:
    """
    One card of the gallery: the image's link and the facts of its metadata record.

    :param src: the link to the image, relative to the page when they share a store.
    """

    src: str
    uri: str
    prompt: str
    type: str
    model: str
    aspect_ratio: str
    layer: str | None
    sha256: str
    size: int
    estimated_cost_usd: float | None
    generation_id: str
    created_at: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int

    @classmethod
    def from_record(cls, image: ManifestImage, record: Mapping[str, Any], src: str) -> GalleryImage:
        request = record.get("request") or {}
        airflow = record.get("airflow") or {}
        layer = record.get("layer") or {}
        cost = record.get("estimated_cost_usd")
        return cls(
            src=src,
            uri=image.uri,
            prompt=str(request.get("prompt") or "(prompt not recorded)"),
            type=str(record.get("type") or request.get("type") or "image"),
            model=str(record.get("model") or request.get("model") or ""),
            aspect_ratio=str(request.get("aspect_ratio") or "default"),
            layer=str(layer["label"]) if isinstance(layer, dict) and layer.get("label") else None,
            sha256=image.sha256,
            size=image.size,
            estimated_cost_usd=float(cost) if isinstance(cost, (int, float)) else None,
            generation_id=image.generation_id,
            created_at=str(record.get("created_at") or ""),
            dag_id=str(airflow.get("dag_id", "")),
            run_id=str(airflow.get("run_id", "")),
            task_id=str(airflow.get("task_id", "")),
            map_index=int(airflow.get("map_index", -1)),
        )


def link_from(page_uri: str, target_uri: str) -> str:
    """
    How the page at ``page_uri`` links to ``target_uri``: a relative, URL-quoted path when both are in
    one store (same scheme and bucket), else the target's URI as is.
    """
    page, target = urlsplit(page_uri), urlsplit(target_uri)
    if (page.scheme, page.netloc) != (target.scheme, target.netloc):
        return target_uri
    return quote(posixpath.relpath(target.path, posixpath.dirname(page.path) or "/"))


def task_link(base_url: str, image: GalleryImage) -> str | None:
    """The Airflow UI page of the task instance that made ``image``; ``None`` without a base URL."""
    if not base_url or not (image.dag_id and image.run_id and image.task_id):
        return None
    link = (
        f"{base_url.rstrip('/')}/dags/{quote(image.dag_id, safe='')}/runs/{quote(image.run_id, safe='')}"
        f"/tasks/{quote(image.task_id, safe='')}"
    )
    return f"{link}/mapped/{image.map_index}" if image.map_index >= 0 else link


def _cost(usd: float | None) -> str:
    return "not priced" if usd is None else f"{usd:.4f} USD (list price)"


def _card(image: GalleryImage, base_url: str) -> str:
    made_by = f"{image.dag_id} / {image.run_id} / {image.task_id}"
    if image.map_index >= 0:
        made_by += f" [{image.map_index}]"
    link = task_link(base_url, image)
    made_by_html = html.escape(made_by)
    if link:
        # _top: inside Airflow's UI the view is in a frame, and the task's page belongs in the window.
        made_by_html = f'<a href="{html.escape(link)}" target="_top">{made_by_html}</a>'
    rows = [
        ("Prompt", html.escape(image.prompt)),
        ("Model", html.escape(f"{image.model} ({image.type})")),
        ("Aspect ratio", html.escape(image.aspect_ratio)),
        *([("Layer", html.escape(image.layer))] if image.layer else []),
        ("Size", f"{image.size:,} bytes"),
        ("sha256", f"<code>{html.escape(image.sha256)}</code>"),
        ("Cost", html.escape(_cost(image.estimated_cost_usd))),
        ("Generation", f"<code>{html.escape(image.generation_id)}</code>"),
        ("Made by", made_by_html),
    ]
    facts = "\n".join(f"      <dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    src = html.escape(image.src)
    return (
        '  <figure class="card">\n'
        f'    <a href="{src}"><img src="{src}" alt="{html.escape(image.prompt)}" '
        f'width="{THUMBNAIL_PX}"></a>\n'
        f"    <dl>\n{facts}\n    </dl>\n"
        "  </figure>"
    )


_STYLE = f"""
  body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #1d1d1f; background: #fafafa; }}
  header p {{ color: #555; margin: .2rem 0; }}
  main {{ display: grid; grid-template-columns: repeat(auto-fill, minmax({THUMBNAIL_PX + 20}px, 1fr));
          gap: 1rem; margin-top: 1.5rem; }}
  .card {{ margin: 0; padding: 10px; background: #fff; border: 1px solid #ddd; border-radius: 8px; }}
  .card img {{ width: 100%; height: 220px; object-fit: contain; background: #eee; border-radius: 4px; }}
  dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .15rem .6rem; margin: .6rem 0 0; }}
  dt {{ color: #666; }} dd {{ margin: 0; overflow-wrap: anywhere; }}
  code {{ font-size: 11px; }}
"""


def render_cards(images: Sequence[GalleryImage], base_url: str = "") -> str:
    """One ``<figure class="card">`` per image, for a gallery page or the Luma view in Airflow's UI."""
    return "\n".join(_card(image, base_url) for image in images)


def render_page(title: str, header: str, body: str) -> str:
    """
    A whole page in the gallery's look: ``title`` is escaped here; ``header`` and ``body`` are HTML
    their callers escaped.
    """
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
  <h1>{html.escape(title)}</h1>
{header}
</header>
<main>
{body}
</main>
</body>
</html>
"""


def render_gallery(
    images: Sequence[GalleryImage], manifest: Manifest, *, title: str, manifest_link: str, base_url: str = ""
) -> str:
    """
    The gallery page's HTML.

    :param images: the cards, in the manifest's order.
    :param manifest: the batch (its run and total cost head the page).
    :param title: the page's title (escaped here).
    :param manifest_link: the link to the manifest file, relative to the page where possible.
    :param base_url: Airflow's UI address (``[api] base_url``), to link each image to its task; no
        links when empty.
    """
    run = manifest.run
    summary = (
        f"{len(images)} image(s) from {manifest.generations} generation(s), estimated "
        f"{_cost(manifest.estimated_cost_usd)}"
    )
    if manifest.unpriced_generations:
        summary += f"; {manifest.unpriced_generations} generation(s) not priced"
    header = (
        f"  <p>{html.escape(summary)}</p>\n"
        f"  <p>DAG run {html.escape(run.get('dag_id', ''))} / {html.escape(run.get('run_id', ''))},\n"
        f"     manifest written {html.escape(manifest.written_at)}\n"
        f'     (<a href="{html.escape(manifest_link)}">manifest</a>)</p>'
    )
    return render_page(title, header, render_cards(images, base_url))


@dataclass(frozen=True)
class GalleryPage:
    """A written gallery: where the page is, the manifest it shows, and how many images."""

    uri: str
    manifest_uri: str
    images: int

    def to_json(self) -> dict[str, Any]:
        return {"gallery_uri": self.uri, "manifest_uri": self.manifest_uri, "images": self.images}


def write_gallery(
    manifest_path: ObjectStoragePath,
    page: ObjectStoragePath,
    *,
    conn_id: str | None,
    title: str,
    base_url: str = "",
) -> GalleryPage:
    """
    Build the gallery of the manifest at ``manifest_path`` and publish it, whole, at ``page``.

    Each image's record is read and checked against the manifest first: a batch whose objects were
    replaced since is refused (:class:`~airflow_provider_luma.exceptions.LumaManifestError`) rather
    than shown with facts that describe other bytes.

    :param conn_id: the connection for the images' and records' store.
    """
    import io

    from airflow_provider_luma.manifest import read_manifest, read_record
    from airflow_provider_luma.storage import object_uri, publish

    manifest = read_manifest(manifest_path)
    page_uri = object_uri(page)
    images = [
        GalleryImage.from_record(image, read_record(image, conn_id), link_from(page_uri, image.uri))
        for image in manifest.images
    ]
    body = render_gallery(
        images,
        manifest,
        title=title,
        manifest_link=link_from(page_uri, object_uri(manifest_path)),
        base_url=base_url,
    ).encode()
    publish(io.BytesIO(body), page, size=len(body))
    return GalleryPage(uri=page_uri, manifest_uri=object_uri(manifest_path), images=len(images))
