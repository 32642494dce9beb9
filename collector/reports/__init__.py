"""The district compliance report: InfluxDB -> report.html (inline SVG charts) + report.csv."""

from collector.reports.command import ReportOptions, cmd_report, write_report
from collector.reports.model import Period, ReportData

__all__ = ["Period", "ReportData", "ReportOptions", "cmd_report", "write_report"]
