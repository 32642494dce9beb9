"""Alert emails to district IT: conditions from samples and statuses, Alertmanager-like timing.

Nothing is imported here on purpose: ``collector.config`` imports ``collector.alerts.settings``
and must not pull in the engine (and with it smtplib and sqlite3) through this package.
"""
