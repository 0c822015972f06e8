"""Idempotent consumer runtime: inbox, failure taxonomy, retry with backoff, dead letters,
and a pause while the consumer's own database is unreachable.

A service declares what it consumes once, in a ``subscriptions.Subscriptions`` table, and runs
it with ``runtime.EventConsumer.subscribing``.
"""
