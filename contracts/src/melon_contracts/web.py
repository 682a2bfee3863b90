"""The one error format of every Melon Hall HTTP API: ``{"error": code, "detail": reason}``.

``error`` is a stable snake_case code for programs, ``detail`` a reason for people. Each service
declares only its table of refusals (domain error -> status and code); the handlers are here, so
the console, the boards and scripts read one shape from all three services.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

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


def install_error_handlers(
    app: FastAPI, refusals: Refusals, on_refusal: Callable[[str], None] | None = None
) -> None:
    """Answer each refusal with its status and code, and invalid requests with 422.

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

    for kind in refusals:
        app.add_exception_handler(kind, refuse)
    app.add_exception_handler(RequestValidationError, invalid_request)
