"""Embedded default infrastructure: real PostgreSQL and real Apache Kafka on loopback.

Used by ``waybill up``, the benchmarks and the pytest fixtures alike (one module, one
behaviour). Dev-only: a service's runtime never imports it (its image carries no JDK and no
PostgreSQL binaries); what a service needs at run time lives in ``waybill.common``.
"""

from waybill.devstack.infra.kafka import EmbeddedKafka
from waybill.devstack.infra.network import free_port
from waybill.devstack.infra.postgres import EmbeddedPostgres
from waybill.devstack.infra.process import ManagedProcess

__all__ = ["EmbeddedKafka", "EmbeddedPostgres", "ManagedProcess", "free_port"]
