"""Embedded default infrastructure: real PostgreSQL and real Apache Kafka on loopback.

Used by ``waybill up`` and by the pytest fixtures alike (one module, one behaviour).
"""

from waybill.common.infra.kafka import EmbeddedKafka
from waybill.common.infra.postgres import EmbeddedPostgres
from waybill.common.infra.process import ManagedProcess

__all__ = ["EmbeddedKafka", "EmbeddedPostgres", "ManagedProcess"]
