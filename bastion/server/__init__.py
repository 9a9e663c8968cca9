"""Running the gateway: listeners, workers, signals, reload and shutdown."""
