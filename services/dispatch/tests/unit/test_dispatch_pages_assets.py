"""The dispatch pages link the hall's shared styles and API script, and the app serves them."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from dispatch.bootstrap import build_in_memory
from dispatch.entrypoints.http import create_app

SHARED = {"base.css": "text/css", "controls.css": "text/css", "api.js": "javascript"}


@pytest.mark.parametrize("path", ["/dispatch", "/dispatch?lang=en"])
def test_the_board_links_every_shared_file_and_each_is_served(path: str) -> None:
    service, _ = build_in_memory()
    with TestClient(create_app(service)) as client:
        page = client.get(path)
        assert page.status_code == 200
        links = re.findall(r"(/static/common/[\w.]+)\?v=\w+", page.text)
        assert sorted(link.rsplit("/", 1)[1] for link in set(links)) == sorted(SHARED)
        for link in set(links):
            served = client.get(link)
            name = link.rsplit("/", 1)[1]
            assert served.status_code == 200, link
            assert SHARED[name] in served.headers["content-type"]
            assert served.text.strip()
