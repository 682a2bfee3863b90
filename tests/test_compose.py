"""docker-compose.yml stays valid and runs the same Kafka version as the Maven-fetched broker."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from melon_devkit.kafka import kafka_version

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")


def test_compose_runs_the_same_kafka_version_as_the_local_broker() -> None:
    assert f"image: apache/kafka:{kafka_version()}\n" in COMPOSE


def test_compose_builds_every_service_from_its_dockerfile() -> None:
    for service in ("ingest", "pricing", "dispatch"):
        assert (ROOT / "services" / service / "Dockerfile").is_file()
        assert f"dockerfile: services/{service}/Dockerfile" in COMPOSE


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker-compose", "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
