"""Tables across runs (`duvae report`): read run artifacts, group runs into models, check every number
against its run's current checkpoint, format."""

from duvae_cli.tables.format import FORMATTERS, format_table
from duvae_cli.tables.report import DEFAULT_METRICS, ReportTable, build_report

__all__ = ["DEFAULT_METRICS", "FORMATTERS", "ReportTable", "build_report", "format_table"]
