"""A real single-node Apache Kafka (KRaft) from Maven jars: fetch, format, start, wait, stop.

``python -m melon_devkit.kafka up|down|status|fetch``. The jars are fetched once by Maven into
``.cache/kafka/<version>/libs``; broker data and logs live under ``var/kafka`` (or any folder a
test passes in), never in the source tree.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from melon_devkit.paths import cache_dir, repo_root, var_dir

_STARTED: dict[int, subprocess.Popen[bytes]] = {}
"""Brokers this process started, kept so they can be reaped when stopped."""


class BrokerError(RuntimeError):
    """The broker could not be fetched, formatted or started."""


def kafka_dir() -> Path:
    return repo_root() / "deploy" / "kafka"


def kafka_version() -> str:
    pom = (kafka_dir() / "pom.xml").read_text(encoding="utf-8")
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    if not found:
        raise BrokerError("deploy/kafka/pom.xml names no kafka.version")
    return found.group(1)


def fetch_jars(quiet: bool = False) -> Path:
    """Copy Kafka's jars into the cache with Maven once; later calls return the cached folder."""
    libs = cache_dir() / "kafka" / kafka_version() / "libs"
    done = libs / ".complete"
    if done.is_file():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is needed to fetch Kafka's jars; install it and retry")
    if not quiet:
        print(
            f"fetching Apache Kafka {kafka_version()} jars with Maven into {libs} ...", flush=True
        )
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        "mvn",
        "--batch-mode",
        "--quiet",
        "--file",
        str(kafka_dir() / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(f"Maven could not fetch Kafka's jars:\n{result.stdout}{result.stderr}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    done.write_text(kafka_version(), encoding="utf-8")
    return libs


@dataclass(frozen=True)
class Broker:
    """One broker+controller process with its data, log and pid file in ``home``."""

    home: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "768m"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    def _java(self, libs: Path, main: str, *args: str) -> list[str]:
        java = os.environ.get("JAVA_HOME")
        binary = str(Path(java) / "bin" / "java") if java else "java"
        return [
            binary,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={kafka_dir() / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def write_config(self) -> None:
        base = (kafka_dir() / "server.properties").read_text(encoding="utf-8")
        local = (
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}\n"
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}\n"
            f"log.dirs={self.data_dir}\n"
        )
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(base + local, encoding="utf-8")

    def format_storage(self, libs: Path) -> bool:
        """Format KRaft storage once; returns False when it was formatted already."""
        if (self.data_dir / "meta.properties").is_file():
            return False
        cluster_id = _kafka_uuid()
        command = self._java(
            libs, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config_file)
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed:\n{result.stdout}{result.stderr}")
        return True

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start(self, timeout_s: float = 90.0) -> float:
        """Start the broker unless it runs; wait until it answers; return seconds it took."""
        began = time.monotonic()
        if self.pid() is not None and self.answers():
            return 0.0
        libs = fetch_jars()
        self.write_config()
        self.format_storage(libs)
        if _port_taken(self.port) or _port_taken(self.controller_port):
            raise BrokerError(
                f"port {self.port} or {self.controller_port} is taken by another program"
            )
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(self.config_file)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _STARTED[process.pid] = process
        self.pid_file.write_text(str(process.pid), encoding="utf-8")
        deadline = began + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BrokerError(
                    f"the broker exited with {process.returncode}; see {self.log_file}"
                )
            if self.answers():
                return time.monotonic() - began
            time.sleep(0.3)
        self.stop()
        raise BrokerError(f"the broker did not answer within {timeout_s:.0f}s; see {self.log_file}")

    def answers(self) -> bool:
        if not _port_taken(self.port):
            return False
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap, client_id="melon-probe", request_timeout_ms=3000
            )
        except KafkaError:
            return False
        try:
            admin.list_topics()
            return True
        except KafkaError:
            return False
        finally:
            admin.close()

    def kill(self) -> bool:
        """Kill the broker without warning (SIGKILL), as a power cut would; its data stays."""
        pid = self.pid()
        if pid is None:
            return False
        os.killpg(pid, signal.SIGKILL)
        started = _STARTED.pop(pid, None)
        if started is not None:
            started.wait(timeout=10)
        else:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.pid() is not None:
                _reap(pid)
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker cleanly (SIGTERM), or kill it after ``timeout_s``."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
            _reap(pid)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
        started = _STARTED.pop(pid, None)
        if started is not None:
            started.wait(timeout=10)
        self.pid_file.unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _kafka_uuid() -> str:
    """A cluster id in Kafka's format: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's own ids it never starts with '-': the storage tool would read such an id as an
    option (one start in 64 failed that way).
    """
    import base64

    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def local_broker() -> Broker:
    return Broker(
        home=var_dir() / "kafka",
        port=int(os.environ.get("KAFKA_PORT", "9092")),
        controller_port=int(os.environ.get("KAFKA_CONTROLLER_PORT", "9093")),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="melon_devkit.kafka", description=__doc__)
    parser.add_argument("action", choices=["fetch", "up", "down", "status"])
    args = parser.parse_args(argv)
    broker = local_broker()
    try:
        if args.action == "fetch":
            print(fetch_jars())
        elif args.action == "up":
            took = broker.start()
            state = "was already running" if took == 0.0 else f"started in {took:.1f}s"
            print(f"Kafka {kafka_version()} (KRaft) on {broker.bootstrap} {state}")
            print(f"  data {broker.data_dir}\n  log  {broker.log_file}")
        elif args.action == "down":
            print("Kafka stopped" if broker.stop() else "Kafka was not running")
        else:
            running = broker.pid() is not None and broker.answers()
            print(f"Kafka on {broker.bootstrap}: {'up' if running else 'down'}")
            return 0 if running else 3
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
