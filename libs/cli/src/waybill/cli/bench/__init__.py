"""``waybill bench``: ``eventstore`` (store, relay, consumer throughput), ``memory`` (RSS at
idle), ``saga`` (order -> payment throughput and latency, stepping the offered rate)."""
