"""Prometheus metrics, health probes and structured logs of a bot process."""
