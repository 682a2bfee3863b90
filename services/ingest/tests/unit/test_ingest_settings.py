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
    assert settings.station_ids == ["ws-1", "ws-2", "ts-1"]
    assert [s.kind for s in settings.stations] == ["platform", "platform", "truck"]
    assert settings.log_level == "INFO"


@pytest.mark.parametrize(
    "raw",
    ["ws-7, ws-8:truck", '["ws-7", {"id": "ws-8", "kind": "truck"}]'],
    ids=["comma-separated", "json-array"],
)
def test_stations_are_read_as_a_list(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("INGEST_STATIONS", raw)
    monkeypatch.setenv("INGEST_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.station_ids == ["ws-7", "ws-8"]
    assert [s.kind for s in settings.stations] == ["platform", "truck"]
    assert settings.log_level == "DEBUG"


def test_a_station_gets_its_kinds_legal_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "INGEST_STATIONS", '[{"id": "ws-1", "max_kg": "300", "division_g": 100}, "ts-1:truck"]'
    )
    platform, truck = Settings().stations
    assert platform.resolved == (100, 300_000, 2_000)  # d, Max, Min = 20 d
    assert truck.resolved == (20_000, 60_000_000, 400_000)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("STATIONS", ""),
        ("STATIONS", "ws 1"),
        ("STATIONS", "ws-1,ws-1"),
        ("STATIONS", "ws-1:boat"),
        ("PORT", "0"),
        ("LOG_LEVEL", "LOUD"),
    ],
    ids=["no-stations", "bad-station-id", "twice", "unknown-kind", "port-0", "unknown-level"],
)
def test_bad_setting_fails_at_start(monkeypatch: pytest.MonkeyPatch, name: str, raw: str) -> None:
    monkeypatch.setenv(f"INGEST_{name}", raw)
    with pytest.raises(ValidationError):
        Settings()
