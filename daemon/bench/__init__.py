"""`dropsight bench`: throughput, latency and end-to-end figures (numbers only)."""
