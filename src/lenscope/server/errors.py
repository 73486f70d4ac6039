"""Every error is a JSON body with one human sentence: `{"error": ..., "status": ..., "type": ...}`.

User mistakes (`LenscopeError`) are 4xx with the library's own message; request validation
failures (a body that is not JSON, not UTF-8, nested too deeply, or does not match the schema)
are 422 naming the field; anything else is a 500 saying it is a bug, logged with its
traceback, and the server stays up.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from lenscope.errors import (
    ArtifactError,
    CheckpointError,
    LenscopeError,
    ModelNotFoundError,
)
from lenscope.server.validation import validation_message

log = logging.getLogger("lenscope.server")
_FASTAPI_PARSE_ERROR = "There was an error parsing the body"


class ErrorBody(BaseModel):
    """What every failed request returns."""

    error: str
    status: int
    type: str


class ApiError(Exception):
    """An error the server itself raises with a status (no records loaded, busy, ...)."""

    def __init__(self, status: int, message: str, kind: str = "ApiError") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


class SafeJSONResponse(JSONResponse):
    """JSON where NaN and infinities (undefined scores, masked cells) become null."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:
            text = json.dumps(_finite(content), ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8")


def error_response(status: int, message: str, kind: str) -> SafeJSONResponse:
    body = ErrorBody(error=message, status=status, type=kind)
    return SafeJSONResponse(body.model_dump(), status_code=status)


def status_of(e: LenscopeError) -> int:
    if isinstance(e, ModelNotFoundError):
        return 404
    if isinstance(e, ArtifactError | CheckpointError):
        return 409
    return 400


def body_problem(e: StarletteHTTPException) -> str | None:
    """Why FastAPI could not read a JSON body (it says only "There was an error parsing the
    body", with a 400, and keeps the cause): not UTF-8, or nested deeper than the parser goes.
    None for any other HTTP error."""
    cause = e.__cause__
    if e.status_code != 400 or cause is None or e.detail != _FASTAPI_PARSE_ERROR:
        return None
    if isinstance(cause, UnicodeDecodeError):
        byte = cause.object[cause.start : cause.start + 1].hex()
        return (
            f"the request body is not valid UTF-8 (byte 0x{byte} at position {cause.start}); "
            "send JSON encoded as UTF-8"
        )
    if isinstance(cause, RecursionError):
        return "the request body is JSON nested too deeply to read; no request nests that deep"
    return f"the request body cannot be read as JSON ({type(cause).__name__})"


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LenscopeError)
    async def _lenscope(_: Request, e: LenscopeError) -> SafeJSONResponse:
        return error_response(status_of(e), str(e), type(e).__name__)

    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError) -> SafeJSONResponse:
        return error_response(e.status, e.message, e.kind)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> SafeJSONResponse:
        return error_response(422, validation_message(e.errors(), e.body), "ValidationError")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> SafeJSONResponse:
        unreadable = body_problem(e)
        if unreadable is not None:
            return error_response(422, unreadable, "ValidationError")
        if e.status_code == 404:
            msg = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif e.status_code == 405:
            msg = f"{request.method} is not allowed on {request.url.path}"
        else:
            msg = str(e.detail)
        return error_response(e.status_code, msg, "HTTPError")

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception) -> SafeJSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(
            500,
            f"internal error ({type(e).__name__}: {e}); this is a bug in lenscope, please "
            "report it with the request that caused it",
            "InternalError",
        )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "invalid input (unknown token, node, position ...)"),
        (401, "missing or wrong token"),
        (404, "no such node, record or view"),
        (409, "an artifact is missing or corrupt"),
        (413, "the request body is too large"),
        (422, "the request does not match the schema"),
        (503, "the server is busy; retry"),
    )
}
