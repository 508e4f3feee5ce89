"""The operator console: the REST API, the dashboard and the Prometheus metrics."""
