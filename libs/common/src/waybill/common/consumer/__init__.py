"""Idempotent consumer runtime: inbox, failure taxonomy, retry with backoff, dead letters.

Entry point: ``waybill.common.consumer.runtime.EventConsumer``.
"""
