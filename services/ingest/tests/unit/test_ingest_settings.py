"""Settings come from ``INGEST_*`` environment variables, with local defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ingest.settings import Settings


def test_defaults_run_the_hall_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOOTSTRAP", "HOST", "PORT", "STATIONS", "LOG_LEVEL"):
        monkeypatch.delenv(f"INGEST_{name}", raising=False)
    settings = Settings()
    assert settings.bootstrap == "127.0.0.1:9092"
    assert (settings.host, settings.port) == ("127.0.0.1", 8001)
    assert (settings.stations, settings.log_level) == (["ws-1", "ws-2", "ws-3"], "INFO")


@pytest.mark.parametrize(
    "raw", ["ws-7, ws-8", '["ws-7", "ws-8"]'], ids=["comma-separated", "json-array"]
)
def test_stations_are_read_as_a_list(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("INGEST_STATIONS", raw)
    monkeypatch.setenv("INGEST_LOG_LEVEL", "debug")
    settings = Settings()
    assert (settings.stations, settings.log_level) == (["ws-7", "ws-8"], "DEBUG")


@pytest.mark.parametrize(
    ("name", "raw"),
    [("STATIONS", ""), ("STATIONS", "ws 1"), ("PORT", "0"), ("LOG_LEVEL", "LOUD")],
    ids=["no-stations", "bad-station-id", "port-0", "unknown-level"],
)
def test_bad_setting_fails_at_start(monkeypatch: pytest.MonkeyPatch, name: str, raw: str) -> None:
    monkeypatch.setenv(f"INGEST_{name}", raw)
    with pytest.raises(ValidationError):
        Settings()
