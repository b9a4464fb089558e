"""The developer API, /api/v1/ (django-ninja; docs/api.md). Thin: parse, check the key's scope, call one command
or selector, answer. Refusals of the site's own commands come back as RFC 9457 problems.

`create_edit` and `get_edit` are async so that `Prefer: wait=N` waits as a coroutine (editor/api/waiting.py);
their database work runs through `run_sync`, on a few threads per process (creates on their own), so no thread
or connection is held while a request waits.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any

from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from ninja import File, Form, Header, NinjaAPI, Query, UploadedFile
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.openapi.docs import DocsBase
from ninja.security import HttpBearer

from editor import storage
from editor.api.models import ApiKey, ApiScope
from editor.api.problems import ApiProblem, problem_response
from editor.api.ratelimit import hit
from editor.api.schemas import Credits, Edit, EditPage, Problem
from editor.api.waiting import CREATES, parse_prefer_wait, run_sync, wait_until_final
from editor.errors import Refused
from editor.integrations.outbound import ImageUrlRefused
from editor.models import EditJob
from editor.selectors.api import (
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    BadCursor,
    api_edit_for_owner,
    api_edit_is_final,
    api_edit_page,
    api_ledger_page,
)
from editor.selectors.gallery import STATUS_FILTERS, GalleryFilters, edit_job_for_owner
from editor.services.api_edits import IdempotencyConflict, IdempotencyGone, ImageSource, api_edit_create
from editor.services.api_keys import api_key_authenticate
from editor.services.credits import CreditsError
from editor.services.edit_commands import EditJobNotFound, NotEnoughCredits, TooManyInFlight, edit_job_delete

log = logging.getLogger(__name__)


def _key_from_request(request: HttpRequest) -> ApiKey | None:
    """The active key named by `Authorization: Bearer fai_...`, counted against its rate limit.
    (ninja's own HttpBearer logs a malformed header in DEBUG: this never logs the header.)"""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    key = api_key_authenticate(plaintext=token.strip())
    if key is None:
        return None
    state = hit(key.pk)
    request.api_rate_headers = state.headers()  # type: ignore[attr-defined]
    if not state.allowed:
        raise ApiProblem(429, "rate-limited", "Too many requests",
                         f"This key may make {state.limit} requests a minute.", headers=state.headers())
    return key


class ApiKeyAuth(HttpBearer):
    """For the sync operations: checked in the request's own thread. An async check here would make ninja wrap
    it in async_to_sync, which fails in any thread that already runs an event loop."""

    def __call__(self, request: HttpRequest) -> ApiKey | None:
        return _key_from_request(request)

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover - __call__ does it
        raise NotImplementedError


class AsyncApiKeyAuth(HttpBearer):
    """For the async operations (`Prefer: wait`): the same check through `run_sync` (the light pool)."""

    is_async = True

    async def __call__(self, request: HttpRequest) -> ApiKey | None:
        return await run_sync(_key_from_request)(request)

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover - __call__ does it
        raise NotImplementedError


class OfflineSwagger(DocsBase):
    """Swagger UI from our own static files (static/vendor/swagger-ui/): the docs page works offline."""

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        response = render(request, "api/docs.html", {"openapi_url": reverse("api-v1:openapi-json"), "api": api})
        # Swagger UI sets inline styles on its own elements; nothing else is relaxed, on this page only.
        response._csp_update = {"style-src": ["'unsafe-inline'"]}  # type: ignore[attr-defined]
        return response


api = NinjaAPI(
    title="Fashion AI Studio API",
    version="1.0.0",
    description="Edit the clothing in photos from your own code. Guide: docs/api.md. Errors are RFC 9457 "
                "problem details (application/problem+json).",
    urls_namespace="api-v1",
    auth=ApiKeyAuth(),
    docs=OfflineSwagger(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)

PROBLEMS: dict[int | str, Any] = {code: Problem for code in (400, 401, 403, 404, 409, 422, 429)}


def _need(request: HttpRequest, scope: str) -> ApiKey:
    key: ApiKey = request.auth  # type: ignore[attr-defined]
    if scope not in key.scopes:
        raise ApiProblem(403, "insufficient-scope", "Missing scope", f"This key lacks the {scope} scope.")
    return key


# --- errors as problem details -----------------------------------------------------------------------------


@api.exception_handler(ApiProblem)
def _on_problem(request: HttpRequest, exc: ApiProblem) -> HttpResponse:
    return problem_response(request, exc)


@api.exception_handler(AuthenticationError)
def _on_unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return problem_response(request, ApiProblem(
        401, "unauthenticated", "Unauthenticated", "Send an active API key: Authorization: Bearer fai_...",
        headers={"WWW-Authenticate": 'Bearer realm="api"'}))


@api.exception_handler(NinjaValidationError)
def _on_invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))} for e in exc.errors]
    return problem_response(request, ApiProblem(422, "invalid-request", "Invalid request",
                                                "Some parameters are missing or malformed.", errors=errors))


@api.exception_handler(HttpError)
def _on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return problem_response(request, ApiProblem(exc.status_code, f"http-{exc.status_code}", str(exc.message)))


@api.exception_handler(Http404)
def _on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return problem_response(request, ApiProblem(404, "not-found", "Not found", "No such edit."))


REFUSAL_STATUS: list[tuple[type[Refused], int, str, str]] = [
    (EditJobNotFound, 404, "not-found", "Not found"),
    (IdempotencyGone, 404, "idempotent-edit-deleted", "Edit deleted"),
    (IdempotencyConflict, 409, "idempotency-key-reused", "Idempotency-Key reused"),
    (NotEnoughCredits, 402, "insufficient-credits", "Not enough credits"),
    (TooManyInFlight, 429, "too-many-edits-running", "Too many edits running"),
    (CreditsError, 402, "insufficient-credits", "Not enough credits"),
    (ImageUrlRefused, 422, "image-url-not-fetched", "Image URL not fetched"),
]


@api.exception_handler(Refused)
def _on_refused(request: HttpRequest, exc: Refused) -> HttpResponse:
    status, code, title = next(((s, c, t) for kind, s, c, t in REFUSAL_STATUS if isinstance(exc, kind)),
                               (422, "refused", "Refused"))
    headers = {"Retry-After": "5"} if status == 429 else {}
    return problem_response(request, ApiProblem(status, code, title, exc.message, field=exc.field,
                                                headers=headers))


@api.exception_handler(MultiPartParserError)
@api.exception_handler(BadRequest)
@api.exception_handler(SuspiciousOperation)
def _on_bad_body(request: HttpRequest, exc: Exception) -> HttpResponse:
    # A malformed body (multipart without a boundary, broken encoding) is the client's fault, never a 500.
    status, code = (413, "body-too-large") if isinstance(exc, RequestDataTooBig) else (400, "malformed-request")
    return problem_response(request, ApiProblem(status, code, "Malformed request",
                                                "The request body could not be read."))


@api.exception_handler(Exception)
def _on_error(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.exception("API error on %s %s", request.method, request.path)
    return problem_response(request, ApiProblem(500, "server-error", "Server error", "Something broke on our side."))


# --- edits ---------------------------------------------------------------------------------------------------


def _absolute(request: HttpRequest, body: dict[str, Any]) -> dict[str, Any]:
    result = body.get("result")
    if result and not result["presigned"]:
        result["url"] = request.build_absolute_uri(result["url"]) if result["url"] else ""
        result["thumbnail_url"] = request.build_absolute_uri(result["thumbnail_url"]) if result[
            "thumbnail_url"] else ""
    return body


async def _answer_after_wait(request: HttpRequest, response: HttpResponse, key: ApiKey, job_id: str,
                             prefer: str | None) -> dict[str, Any]:
    wait = parse_prefer_wait(prefer)
    if wait:
        await wait_until_final(job_id, wait, lambda: run_sync(api_edit_is_final)(user=key.user,
                                                                                  job_id=uuid.UUID(job_id)))
        response["Preference-Applied"] = f"wait={wait}"
    body = await run_sync(api_edit_for_owner)(user=key.user, job_id=job_id)
    if body is None:
        raise Http404("No such edit")
    return _absolute(request, body)


@api.post("/edits", auth=AsyncApiKeyAuth(), response={201: Edit, **PROBLEMS, 402: Problem}, tags=["edits"],
          summary="Start an edit", openapi_extra={"responses": {200: {"description": "Replayed (Idempotency-Key)"}}})
async def create_edit(
    request: HttpRequest,
    response: HttpResponse,
    prompt: str = Form(..., description="What the clothing should become, 3 to 500 characters."),  # type: ignore[type-arg]
    clothing: str = Form(..., description="topwear or bottomwear."),  # type: ignore[type-arg]
    image: UploadedFile | None = File(None, description="The photo (JPEG, PNG, WebP, HEIC; at most 15 MB)."),  # type: ignore[type-arg]
    image_url: str = Form("", description="Or: an https URL of the photo (public hosts only)."),  # type: ignore[type-arg]
    photo_id: uuid.UUID | None = Form(None, description="Or: the id of a photo you uploaded before."),  # type: ignore[type-arg]
    idempotency_key: str | None = Header(  # type: ignore[type-arg]
        None, alias="Idempotency-Key", description="The same key and request answer with the first edit (24 h)."),
    prefer: str | None = Header(None, alias="Prefer", description="wait=N (N <= 60)"),  # type: ignore[type-arg]
) -> tuple[int, dict[str, Any]]:
    """Multipart or form-encoded. Exactly one image source: `image` (a file), `image_url` (fetched by us:
    public hosts only) or `photo_id` (a photo you uploaded before). Costs the same credits as the site, and is
    refunded the same way when the edit fails. `Idempotency-Key`: the same key and request answer with the first
    edit (`Idempotent-Replayed: true`), another request with that key is 409; kept 24 h. `Prefer: wait=N`
    (N <= 60) answers once the edit is final or after N seconds."""
    key = _need(request, ApiScope.EDITS_WRITE)
    source = ImageSource(upload=image, url=image_url.strip(), photo_id=photo_id)
    created = await run_sync(api_edit_create, pool=CREATES)(
        user=key.user, prompt=prompt, clothing=clothing, source=source, idempotency_key=idempotency_key
    )
    job_id = str(created.job.pk)
    response["Location"] = f"/api/v1/edits/{job_id}"
    if created.replayed:
        response["Idempotent-Replayed"] = "true"
    body = await _answer_after_wait(request, response, key, job_id, prefer)
    return 201, body


@api.get("/edits/{edit_id}", auth=AsyncApiKeyAuth(), response={200: Edit, **PROBLEMS}, tags=["edits"],
         summary="One edit")
async def get_edit(request: HttpRequest, response: HttpResponse, edit_id: uuid.UUID,
                   prefer: str | None = Header(None, alias="Prefer",  # type: ignore[type-arg]
                                               description="wait=N (N <= 60)")) -> dict[str, Any]:
    """State, progress and ETA, presigned result URLs, credits charged and refunded, the error if it failed.
    `Prefer: wait=N` (N <= 60) answers once it is final or after N seconds."""
    key = _need(request, ApiScope.EDITS_READ)
    return await _answer_after_wait(request, response, key, str(edit_id), prefer)


@api.get("/edits", response={200: EditPage, **PROBLEMS}, tags=["edits"], summary="Your edits, newest first")
def list_edits(
    request: HttpRequest,
    status: Query[str] = "",
    clothing: Query[str] = "",
    q: Query[str] = "",
    cursor: Query[str] = "",
    limit: Query[int] = PAGE_LIMIT_DEFAULT,
) -> dict[str, Any]:
    """The gallery's filters: `status` (done, running, failed), `clothing` (topwear, bottomwear), `q` (words in
    the prompt). Cursor pages: pass `next_cursor` back as `cursor`."""
    key = _need(request, ApiScope.EDITS_READ)
    if status and status not in STATUS_FILTERS:
        raise ApiProblem(422, "invalid-request", "Invalid request", "status is done, running or failed.",
                         field="status")
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise ApiProblem(422, "invalid-request", "Invalid request", f"limit is 1 to {PAGE_LIMIT_MAX}.",
                         field="limit")
    filters = GalleryFilters.from_query({"status": status, "clothing": clothing, "q": q})
    try:
        page = api_edit_page(user=key.user, filters=filters, cursor=cursor or None, limit=limit)
    except BadCursor as exc:
        raise ApiProblem(422, "invalid-cursor", "Invalid cursor", str(exc), field="cursor") from None
    return {"data": [_absolute(request, item) for item in page.items], "next_cursor": page.next_cursor}


@api.delete("/edits/{edit_id}", response={204: None, **PROBLEMS}, tags=["edits"], summary="Delete a finished edit")
def delete_edit(request: HttpRequest, edit_id: uuid.UUID) -> tuple[int, None]:
    """Deletes the edit and its files (the photo too when no other edit uses it). A running edit is refused."""
    key = _need(request, ApiScope.EDITS_WRITE)
    job = edit_job_for_owner(user=key.user, job_id=edit_id)
    if job is None:
        raise Http404("No such edit")
    edit_job_delete(user=key.user, job=job)
    return 204, None


def _owned_file(request: HttpRequest, edit_id: uuid.UUID, which: str) -> HttpResponseBase:
    key = _need(request, ApiScope.EDITS_READ)
    job: EditJob | None = edit_job_for_owner(user=key.user, job_id=edit_id)
    if job is None:
        raise Http404("No such edit")
    field = job.result_image if which == "result" else (job.result_thumbnail or job.result_image)
    return storage.serve(field)


@api.get("/edits/{edit_id}/result", response={200: None, 302: None, **PROBLEMS}, tags=["edits"],
         summary="The edited photo (local storage; on S3 a redirect to a presigned URL)")
def edit_result(request: HttpRequest, edit_id: uuid.UUID) -> HttpResponseBase:
    return _owned_file(request, edit_id, "result")


@api.get("/edits/{edit_id}/thumbnail", response={200: None, 302: None, **PROBLEMS}, tags=["edits"],
         summary="The result's thumbnail")
def edit_thumbnail(request: HttpRequest, edit_id: uuid.UUID) -> HttpResponseBase:
    return _owned_file(request, edit_id, "thumbnail")


# --- credits ---------------------------------------------------------------------------------------------------


@api.get("/credits", response={200: Credits, **PROBLEMS}, tags=["credits"], summary="Balance and ledger")
def credits(request: HttpRequest, cursor: Query[str] = "", limit: Query[int] = PAGE_LIMIT_DEFAULT) -> dict[str, Any]:
    """The balance and the ledger, newest first, in cursor pages."""
    key = _need(request, ApiScope.EDITS_READ)
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise ApiProblem(422, "invalid-request", "Invalid request", f"limit is 1 to {PAGE_LIMIT_MAX}.",
                         field="limit")
    try:
        balance, page = api_ledger_page(user=key.user, cursor=cursor or None, limit=limit)
    except BadCursor as exc:
        raise ApiProblem(422, "invalid-cursor", "Invalid cursor", str(exc), field="cursor") from None
    return {"balance": balance, "data": page.items, "next_cursor": page.next_cursor}


