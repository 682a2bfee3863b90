"""How many scale readings a second the gateway pipeline sustains on this machine.

    python bench/bench_gateway.py [--seconds 10] [--bootstrap 127.0.0.1:9092] [--json out.json]

Stages, per wire format:

- ``decoder``: bytes already in memory through the stream decoder alone;
- ``memory``: the scale simulator (its own process) streaming as fast as TCP takes it on
  127.0.0.1, the gateway decoding and building a ``ScaleReading`` per frame into a memory sink;
- ``kafka`` (only with ``--bootstrap``): the same into ``scale.readings`` through the gateway's
  Kafka sink; the rate counts up to the flush at the end, so it is what the broker took.

One station's indicator sends ten readings a second, so readings/s divided by 10 is roughly how
many stations one gateway process could serve. The run takes about ``--seconds`` in all.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import common
import httpx
from kafka import KafkaAdminClient
from prometheus_client import CollectorRegistry

from ingest.domain.frames import PROTOCOLS, Frame, decoder_for, encode_mtsics, encode_xk3190
from ingest.gateway import Gateway, GatewayMetrics, MemorySink, ReadingSink, ScaleConfig
from ingest.gateway.sinks import KafkaReadingSink
from melon_contracts.topics import SCALE_READINGS

LOAD_KG = "412.4"


@dataclass(frozen=True)
class Result:
    stage: str
    protocol: str
    readings: int
    seconds: float
    malformed: int = 0
    publish_failures: int = 0

    @property
    def per_second(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0


def sample_stream(protocol: str, frames: int = 10_000) -> bytes:
    """Frames of a platform scale in use: loads in 20 g steps, stable and moving."""
    values = [((index * 7_919) % 150_000) * 20 for index in range(frames)]
    if protocol == "mt-sics":
        return b"".join(
            encode_mtsics(v, index % 3 != 0, decimals=2) for index, v in enumerate(values)
        )
    return b"".join(encode_xk3190(v, 2) for v in values)


def bench_decoder(protocol: str, seconds: float, chunk: int = 4_096) -> Result:
    data = sample_stream(protocol)
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    decoder = decoder_for(protocol)
    frames = malformed = 0
    began = time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        for piece in chunks:
            for item in decoder.feed(piece):
                if isinstance(item, Frame):
                    frames += 1
                else:
                    malformed += 1
    return Result("decoder", protocol, frames, elapsed, malformed=malformed)


class Simulator:
    """The scale simulator in a process of its own, one station per wire format, at full rate."""

    def __init__(self) -> None:
        stations = [f"bench-{protocol}:0:{protocol}:settle_s=0" for protocol in PROTOCOLS]
        args = [sys.executable, "-m", "melon_devkit.scalesim", "--control-port", "0"]
        for station in stations:
            args += ["--station", station]
        args += ["--rate", "1000000", "--log-level", "WARNING"]
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.ports: dict[str, int] = {}
        self.control_url = ""
        assert self.process.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the scale simulator exited before it was ready")
            if found := re.search(r"bench-(\S+) speaks \S+ on 127\.0\.0\.1:(\d+)", line):
                self.ports[found.group(1)] = int(found.group(2))
            if found := re.search(r"control API on (http://127\.0\.0\.1:\d+)", line):
                self.control_url = found.group(1)
            if line.strip() == "scalesim ready":
                break
        for protocol in PROTOCOLS:
            answer = httpx.post(
                f"{self.control_url}/scales/bench-{protocol}/load", json={"kg": LOAD_KG}
            )
            answer.raise_for_status()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


async def _run_for(
    gateway: Gateway, sink_count: Callable[[], int], seconds: float
) -> tuple[int, float]:
    """Serve; start the clock at the first reading; stop after ``seconds``."""
    serving = asyncio.create_task(gateway.run())
    deadline = time.perf_counter() + 5
    while sink_count() == 0:
        if time.perf_counter() > deadline:
            gateway.stop()
            await serving
            raise RuntimeError("no reading reached the sink within 5 s")
        await asyncio.sleep(0.005)
    first, began = sink_count(), time.perf_counter()
    await asyncio.sleep(seconds)
    gateway.stop()
    await serving
    return sink_count() - first, time.perf_counter() - began


def bench_pipeline(
    stage: str, protocol: str, port: int, seconds: float, bootstrap: str | None
) -> Result:
    metrics = GatewayMetrics(CollectorRegistry())
    station = f"bench-{protocol}"
    scale = ScaleConfig.model_validate({"station": station, "port": port, "protocol": protocol})
    sink: ReadingSink
    count: Callable[[], int]
    if bootstrap is None:
        memory = MemorySink(keep=1_000)
        sink, count = memory, lambda: memory.count
    else:
        sink = KafkaReadingSink(bootstrap, metrics)
        count = lambda: int(metrics.value("readings_total", station=station))  # noqa: E731
    gateway = Gateway([scale], sink, metrics)
    readings, elapsed = asyncio.run(_run_for(gateway, count, seconds))
    flush_began = time.perf_counter()
    sink.close()
    elapsed += time.perf_counter() - flush_began if bootstrap is not None else 0.0
    malformed = sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "melon_gateway_malformed_frames_total"
    )
    failures = metrics.value("publish_failures_total", station=station)
    return Result(stage, protocol, readings, elapsed, int(malformed), int(failures))


def topic_exists(bootstrap: str, topic: str) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="melon-bench")
    try:
        return topic in admin.list_topics()
    finally:
        admin.close()


def table(results: list[Result]) -> str:
    lines = [
        f"{'stage':<10} {'protocol':<9} {'readings/s':>12} {'readings':>10} {'seconds':>8} "
        f"{'malformed':>9} {'failures':>8}"
    ]
    for result in results:
        lines.append(
            f"{result.stage:<10} {result.protocol:<9} {result.per_second:>12,.0f} "
            f"{result.readings:>10,} {result.seconds:>8.2f} {result.malformed:>9} "
            f"{result.publish_failures:>8}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="rough total run time")
    parser.add_argument("--bootstrap", help="also publish to this Kafka broker (host:port)")
    parser.add_argument("--json", type=Path, help="write the results to this file as JSON")
    args = parser.parse_args(argv)

    stages = 3 if args.bootstrap else 2
    decoder_s = args.seconds * 0.2 / len(PROTOCOLS)
    pipeline_s = args.seconds * 0.8 / ((stages - 1) * len(PROTOCOLS))
    results = [bench_decoder(protocol, decoder_s) for protocol in PROTOCOLS]
    if args.bootstrap and not topic_exists(args.bootstrap, SCALE_READINGS.name):
        parser.exit(
            2,
            f"{SCALE_READINGS.name} is not on {args.bootstrap}; make topics BOOTSTRAP=... first\n",
        )
    simulator = Simulator()
    try:
        for protocol in PROTOCOLS:
            port = simulator.ports[protocol]
            results.append(bench_pipeline("memory", protocol, port, pipeline_s, None))
            if args.bootstrap:
                results.append(bench_pipeline("kafka", protocol, port, pipeline_s, args.bootstrap))
    finally:
        simulator.stop()

    machine = common.machine()
    print(f"Melon Hall scale gateway, Python {machine['python']} on {machine['cpus']} CPUs")
    print(table(results))
    if args.json is not None:
        document = {
            "machine": machine,
            "results": [asdict(r) | {"readings_per_s": round(r.per_second)} for r in results],
        }
        common.write_json(args.json, document)


if __name__ == "__main__":
    main()
