"""The background service: wiring, lifecycle, start-up and its failures."""
