"""The Faust worker: app wiring, batch delivery from the consumer, broker compatibility
and broker health. It drives :class:`gatewatch.core.processor.Processor`."""
