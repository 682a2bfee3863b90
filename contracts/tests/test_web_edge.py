"""The HTTP edge every service shares: one refusal format for everything, a body size cap, and an
OpenAPI document that describes the bodies the API really sends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from melon_contracts.web import ErrorBody, install_error_handlers


class Note(BaseModel):
    text: str


class Refused(Exception):
    pass


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app, {Refused: (409, "refused")}, max_body_bytes=1024)

    @app.post("/notes")
    def add(note: Note) -> dict[str, str]:
        if note.text == "no":
            raise Refused("not this one")
        return {"text": note.text}

    with TestClient(app) as client:
        yield client


def test_malformed_json_is_refused_with_422_in_the_one_format(client: TestClient) -> None:
    response = client.post(
        "/notes", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert ErrorBody.model_validate(response.json())


def test_a_body_over_the_limit_is_refused_before_it_is_read(client: TestClient) -> None:
    big = b'{"text": "' + b"x" * 5000 + b'"}'
    response = client.post("/notes", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "body_too_large" and "1 KiB" in body["detail"]
    assert "KiB" in body["detail_zh"]


def test_a_body_without_a_length_is_counted_as_it_arrives(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    response = client.post("/notes", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert client.post("/notes", json={"text": "small"}).json() == {"text": "small"}


def test_unknown_paths_and_methods_answer_in_the_one_format(client: TestClient) -> None:
    missing = client.get("/nowhere")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong = client.get("/notes")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")
    assert "allow" in wrong.headers


def test_the_openapi_document_describes_every_422_and_413_as_the_refusal_body(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/notes"]["post"]["responses"]
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    assert responses["422"]["content"]["application/json"]["schema"] == ref
    assert responses["413"]["content"]["application/json"]["schema"] == ref
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert client.post("/notes", json={"text": "no"}).json()["error"] == "refused"
