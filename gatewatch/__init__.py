"""gatewatch: a streaming congestion monitor for land border gates.

Package map (the folders follow the data):

- ``gatewatch.streams``: what flows: event and window records, topics, codecs, validation.
- ``gatewatch.agents``: what acts on it: per-vehicle queue state, event-time windows,
  metrics, and the Faust app factory that wires them to Kafka.
- ``gatewatch.gates`` / ``gatewatch.settings``: the gate configuration and runtime settings.
- ``gatewatch.broker``: the embedded Kafka-compatible broker for one-laptop runs.
- ``gatewatch.simulate``: simulated Lạng Sơn traffic.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
