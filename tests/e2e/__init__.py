"""End-to-end tests: remedy between real Prometheus, Alertmanager and container engine."""
