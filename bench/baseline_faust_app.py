"""The faust side of the baseline benchmark: one agent that passes each record on, transformed.

Configured as the pricing worker is (faust-streaming on aiokafka, raw bytes, acks=all but, as
faust has it outside exactly-once processing, not idempotent; a memory store, the same session
timeout), so its rate is what faust itself costs the matcher. It is run by
``bench_baselines.py`` as ``python -m faust -A bench.baseline_faust_app worker`` with the
repository's root on the path and its topics and broker in ``BENCH_BASELINE_*`` variables.
"""

from __future__ import annotations

import os
from typing import Any

import faust

from bench.bench_baselines import transform

PARTITIONS = int(os.environ.get("BENCH_BASELINE_PARTITIONS", "6"))

app = faust.App(
    os.environ["BENCH_BASELINE_APP_ID"],
    broker=f"kafka://{os.environ['BENCH_BASELINE_BOOTSTRAP']}",
    store="memory://",
    datadir=os.environ["BENCH_BASELINE_DATA_DIR"],
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    topic_allow_declare=True,  # for faust's own assignor topic; the bench makes the others
    producer_acks=-1,
    web_enabled=False,
    web_host="127.0.0.1",
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=10.0,
    broker_heartbeat_interval=2.0,
)


def raw_topic(name: str) -> Any:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=PARTITIONS,
        internal=False,
    )


source = raw_topic(os.environ["BENCH_BASELINE_SOURCE"])
sink = raw_topic(os.environ["BENCH_BASELINE_SINK"])


@app.agent(source)
async def pass_on(stream: Any) -> None:
    # Sent without waiting for each acknowledgement, as a plain faust agent forwards.
    async for event in stream.events():
        await sink.send(key=event.key, value=transform(event.value))
