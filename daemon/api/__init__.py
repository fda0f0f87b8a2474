"""The loopback control API: server, connection limits, typed client."""
