"""The pure core: per-vehicle trips, event-time windows, the ledger, congestion levels,
per-gate signals and the batch processor. No I/O, no clock, no Kafka/HTTP/Prometheus:
every function takes explicit timestamps (``tests/unit/test_layout.py`` enforces this)."""
