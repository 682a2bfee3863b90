"""The local broker's cluster ids are ones Kafka's storage tool accepts."""

from __future__ import annotations

import base64

from melon_devkit.kafka import _kafka_uuid


def test_cluster_ids_are_16_bytes_and_never_read_as_an_option() -> None:
    ids = [_kafka_uuid() for _ in range(5000)]
    assert not any(cluster_id.startswith("-") for cluster_id in ids)
    assert all(len(base64.urlsafe_b64decode(cluster_id + "==")) == 16 for cluster_id in ids)
    assert len(set(ids)) == len(ids)
