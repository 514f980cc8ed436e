"""What acts on the stream: queue state, windows, metrics, and the Faust app factory."""
