"""
The Luma view: a FastAPI app the api-server mounts at ``/luma``, listing what the deployment stored.

Airflow mounts a plugin's app with ``app.mount()``, and a mount inherits none of the core API's
authentication: every route here asks for the caller itself (Airflow's ``get_user``: the bearer
token, or the UI's session cookie, which the browser sends to this same origin when the UI shows
the view in its frame), and every image is filtered through the auth manager's answer for its DAG,
so a user sees only the images of DAGs they may read. Images are streamed from storage through the
api-server with the deployment's own connection: no presigned URL, no storage credential, no API key
reaches the browser. Routes are plain ``def``: FastAPI runs them in worker threads, so the storage
reads never block the api-server's event loop.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from airflow_provider_luma._compat import conf
from airflow_provider_luma.catalog import CatalogEntry, entry_of, list_entries
from airflow_provider_luma.exceptions import LumaConfigurationError, LumaRequestValidationError
from airflow_provider_luma.gallery import GalleryImage, render_cards, render_page
from airflow_provider_luma.links.luma import URL_PREFIX
from airflow_provider_luma.storage import configured_folder
from airflow_provider_luma.uploads import METADATA_SUFFIX, contained_target

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
    from airflow.sdk import ObjectStoragePath

_CHUNK = 256 * 1024
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})


def _user_dependency() -> Any:
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def _readable(user: BaseUser) -> Any:
    """The auth manager's filter for this caller: which of the given DAG ids they may read."""
    from airflow.api_fastapi.app import get_auth_manager

    def readable(dag_ids: set[str]) -> set[str]:
        if not dag_ids:
            return set()
        return set(get_auth_manager().filter_authorized_dag_ids(dag_ids=dag_ids, user=user, method="GET"))

    return readable


def _root() -> ObjectStoragePath:
    """The deployment's storage (``[luma] output_path``), or a 503 that says what to set."""
    try:
        return configured_folder(None, None, task_id="luma-view")
    except LumaConfigurationError as error:
        raise HTTPException(
            503, "The Luma view needs the [luma] output_path option (AIRFLOW__LUMA__OUTPUT_PATH)"
        ) from error


def _image_url(entry: CatalogEntry) -> str:
    return "images/" + quote(entry.path)


def _card_image(entry: CatalogEntry) -> GalleryImage:
    return GalleryImage.from_record(entry.image, entry.record, _image_url(entry))


def _describe(entry: CatalogEntry) -> dict[str, Any]:
    card = _card_image(entry)
    return {
        "path": entry.path,
        "image_url": _image_url(entry),
        "generation_id": card.generation_id,
        "prompt": card.prompt,
        "model": card.model,
        "type": card.type,
        "aspect_ratio": card.aspect_ratio,
        "layer": card.layer,
        "sha256": card.sha256,
        "size": card.size,
        "estimated_cost_usd": card.estimated_cost_usd,
        "written_at": entry.written_at,
        "dag_id": card.dag_id,
        "run_id": card.run_id,
        "task_id": card.task_id,
        "map_index": card.map_index,
    }


@dataclass
class ImageQuery:
    """The view's filters, from the query string: what the task links and the filter form set."""

    dag_id: str | None = Query(None, max_length=250)
    run_id: str | None = Query(None, max_length=250)
    task_id: str | None = Query(None, max_length=250)
    map_index: int | None = Query(None, ge=-1)
    generation_id: str | None = Query(None, max_length=64)
    since: str | None = Query(None, max_length=32, description="an ISO date or time")
    limit: int = Query(100, ge=1, le=500)

    def entries(self, user: BaseUser) -> list[CatalogEntry]:
        filters = {name: getattr(self, name) for name in ("dag_id", "run_id", "task_id", "generation_id")}
        filters["map_index"] = None if self.map_index is None else str(self.map_index)
        return list_entries(
            _root(), readable=_readable(user), filters=filters, since=self.since, limit=self.limit
        )


def _filters_form(query: ImageQuery, count: int) -> str:
    # The task-level filters a link set are kept as hidden fields, so filtering by date keeps them.
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(str(value))}">'
        for name in ("run_id", "task_id", "map_index", "generation_id")
        if (value := getattr(query, name)) is not None
    )
    return (
        f'  <form method="get" action="">{hidden}\n'
        f'    <label>DAG <input name="dag_id" value="{html.escape(query.dag_id or "")}"></label>\n'
        f'    <label>Since <input name="since" type="date" value="{html.escape(query.since or "")}">'
        "</label>\n"
        '    <button type="submit">Filter</button> <a href="./">all</a>\n'
        "  </form>\n"
        f"  <p>{count} image(s), newest first, of the DAGs you may read.</p>"
    )


def create_app() -> FastAPI:
    """The view's app: ``/`` (the page), ``/api/images`` (the same list as JSON), ``/images/<path>``."""
    app = FastAPI(title="Luma images", docs_url=None, redoc_url=None, openapi_url=None)
    current_user = Depends(_user_dependency())
    image_query = Depends(ImageQuery)

    @app.exception_handler(HTTPException)
    async def _unauthenticated_page_goes_to_login(request: Request, error: HTTPException) -> Response:
        # A person opening the page without a session is sent to log in, and back; an API or image
        # request gets the status, as Airflow's own API does.
        if error.status_code == 401 and request.url.path.rstrip("/") == URL_PREFIX:
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), 303)
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    @app.get("/", response_class=HTMLResponse)
    def view(user: BaseUser = current_user, query: ImageQuery = image_query) -> HTMLResponse:
        entries = query.entries(user)
        base_url = conf.get("api", "base_url", fallback="") or ""
        cards = render_cards([_card_image(entry) for entry in entries], base_url)
        page = render_page("Luma images", _filters_form(query, len(entries)), cards)
        return HTMLResponse(page, headers={"Cache-Control": "private, no-store"})

    @app.get("/api/images")
    def images(user: BaseUser = current_user, query: ImageQuery = image_query) -> dict[str, Any]:
        entries = query.entries(user)
        return {"images": [_describe(entry) for entry in entries], "total_entries": len(entries)}

    @app.get("/images/{path:path}")
    def image(path: str, user: BaseUser = current_user) -> StreamingResponse:
        root = _root()
        try:
            target = contained_target(root, path)
        except LumaRequestValidationError as error:
            raise HTTPException(404, "No such image") from error
        entry = entry_of(root, path + METADATA_SUFFIX)
        # One answer for "not there" and "not yours": the view does not confirm what it hides.
        if entry is None or entry.dag_id not in _readable(user)({entry.dag_id}):
            raise HTTPException(404, "No such image")
        if entry.image.content_type not in _IMAGE_TYPES:
            raise HTTPException(404, "No such image")
        return StreamingResponse(
            _chunks(target),
            media_type=entry.image.content_type,
            headers={
                "Cache-Control": "private, max-age=300",
                "X-Content-Type-Options": "nosniff",
                "Content-Disposition": f'inline; filename="{quote(target.name)}"',
            },
        )

    return app


def _chunks(target: ObjectStoragePath) -> Iterator[bytes]:
    """The object's bytes in chunks: memory stays flat whatever the image's size."""
    with target.fs.open(target.path, "rb") as source:
        while chunk := source.read(_CHUNK):
            yield chunk
