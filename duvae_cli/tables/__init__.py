"""Tables across runs (`duvae report`): read run artifacts, group runs into models, format."""

from duvae_cli.tables.format import FORMATTERS, format_table
from duvae_cli.tables.report import DEFAULT_METRICS, ReportTable, build_report

__all__ = ["DEFAULT_METRICS", "FORMATTERS", "ReportTable", "build_report", "format_table"]
