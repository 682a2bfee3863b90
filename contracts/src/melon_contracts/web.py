"""The one error format of every Melon Hall HTTP API: ``{"error": code, "detail": reason}``.

``error`` is a stable snake_case code for programs, ``detail`` a reason for people. Each service
declares only its table of refusals (domain error -> status and code); the handlers are here, so
the console, the boards and scripts read one shape from all three services, for invalid bodies,
unknown paths and bodies too large alike, and the OpenAPI document says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body any route takes (a grading profile is a few KiB): 1 MiB."""

Refusals = Mapping[type[Exception], tuple[int, str]]
"""Domain error class -> (HTTP status, error code); the most specific class of an error wins.

An error that carries its own ``code`` attribute (a string, e.g. a refusal reason) answers with
that code and the table's status; one with a ``message_zh`` adds it as ``detail_zh``.
"""


class ErrorBody(BaseModel):
    """Why a request was refused; ``detail_zh`` when the refusal also speaks Chinese."""

    error: str
    detail: str
    detail_zh: str | None = None


def error_response(
    status_code: int, code: str, detail: str, detail_zh: str | None = None
) -> JSONResponse:
    body = ErrorBody(error=code, detail=detail, detail_zh=detail_zh)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status_code)


def documented(refusals: Refusals) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the statuses the refusals can produce."""
    return {status: {"model": ErrorBody} for status, _ in sorted(set(refusals.values()))}


class BodyTooLarge(Exception):
    """A request body past ``MAX_BODY_BYTES``; answered 413 before it is read in full."""


class BodyLimit:
    """ASGI middleware: a body declared or found larger than ``max_bytes`` gets 413 at once.

    A declared ``Content-Length`` over the limit is refused before a byte is read; a body sent
    without one is counted as it arrives and refused once it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await too_large(self.max_bytes)(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:
                await too_large(self.max_bytes)(scope, receive, send)


def too_large(max_bytes: int) -> JSONResponse:
    kib = max_bytes // 1024
    return error_response(
        413,
        "body_too_large",
        f"the request body is larger than {kib} KiB",
        f"请求内容超过 {kib} KiB",
    )


_HTTP_CODES = {
    400: "unreadable_body",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def _document_refusals(app: FastAPI) -> None:
    """Make the OpenAPI document tell the truth: every 422 (and 413) is an ``ErrorBody``."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        ref = {"$ref": "#/components/schemas/ErrorBody"}
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorBody", ErrorBody.model_json_schema())
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": "The request is not valid: which field, and why",
                        "content": {"application/json": {"schema": ref}},
                    }
                if "requestBody" in operation:
                    for code, why in (
                        ("400", "The body could not be read"),
                        ("413", "The body is larger than the API takes"),
                    ):
                        responses.setdefault(
                            code,
                            {"description": why, "content": {"application/json": {"schema": ref}}},
                        )
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(
    app: FastAPI,
    refusals: Refusals,
    on_refusal: Callable[[str], None] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> None:
    """Answer each refusal with its status and code, invalid requests with 422, unknown paths
    and methods with 404 and 405, and bodies over ``max_body_bytes`` with 413, all in the one
    format, and document it so.

    ``on_refusal`` is called with the code of every refusal answered, e.g. to count them.
    """
    counted = on_refusal if on_refusal is not None else (lambda _code: None)

    def refuse(_: Request, exc: Exception) -> JSONResponse:
        for kind in type(exc).__mro__:
            if kind in refusals:
                status_code, code = refusals[kind]
                own = getattr(exc, "code", None)
                zh = getattr(exc, "message_zh", None)
                counted(str(own or code))
                return error_response(
                    status_code, str(own or code), str(exc), zh if isinstance(zh, str) else None
                )
        raise exc

    def invalid_request(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        detail = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        counted("invalid_request")
        return error_response(422, "invalid_request", detail)

    def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if isinstance(exc.__cause__, BodyTooLarge):
            # FastAPI turns any failure to read a body into a 400; this one was the limit.
            return too_large(max_body_bytes)
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        response = error_response(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    for kind in refusals:
        app.add_exception_handler(kind, refuse)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    _document_refusals(app)
