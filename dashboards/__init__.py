"""Grafana dashboards of schoolmon, generated from code (``python -m dashboards.build``)."""
