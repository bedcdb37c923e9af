"""A `ReportTable` as CSV (raw numbers), Markdown or LaTeX (mean +- std, accuracies in percent), or JSON.

Every format has the key columns dataset, model, settings (config), the evaluation settings
(`table.setting_columns`: K and examples, and the others that vary), runs and stale (yes, no, unknown).
"""

from __future__ import annotations

import csv
import io
import json

from duvae_cli.errors import UsageError
from duvae_cli.tables.evaluations import DATA
from duvae_cli.tables.report import SETTING_HEADERS, Cell, Column, ReportTable, Row
from duvae_cli.tables.runs import Unknown


def _display(column: Column, cell: Cell | None, pm: str, missing: str) -> str:
    if cell is None or cell.mean is None:
        return missing
    scale, digits = (100.0, 1) if column.is_accuracy else (1.0, 1 if column.key[1] == "au" else 2)
    text = f"{cell.mean * scale:.{digits}f}"
    return text if cell.std is None else f"{text}{pm}{cell.std * scale:.{digits}f}"


def _header(column: Column) -> str:
    return f"{column.header} (%)" if column.is_accuracy else column.header


def _key_headers(table: ReportTable) -> list[str]:
    return ["dataset", "model", "settings", *(SETTING_HEADERS[s] for s in table.setting_columns), "runs", "stale"]


def _setting(row: Row, name: str, missing: str, short: bool) -> str:
    """A row's evaluation setting as text: `missing` for a probe-only row, ? when unknown; the data
    fingerprint shortened to 12 hex digits in markdown and LaTeX."""
    if row.evaluation is None:
        return missing
    value = str(row.evaluation[name])
    return value[:12] if short and name == DATA else value


def _key_cells(table: ReportTable, row: Row, missing: str = "", short: bool = False) -> list[str]:
    settings = [_setting(row, s, missing, short) for s in table.setting_columns]
    return [row.dataset, row.model, row.settings, *settings, str(len(row.runs)), row.stale]


def to_csv(table: ReportTable) -> str:
    """Raw values: per column `<header>_mean`, `_std` (empty for one run) and `_n`; accuracies as
    fractions; `run_dirs` and `stale_runs` (names joined by ;)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_key_headers(table), *(f"{c.header}_{s}" for c in table.columns for s in ("mean", "std", "n")),
                     "run_dirs", "stale_runs"])
    for row in table.rows:
        numbers = []
        for column in table.columns:
            cell = row.cells.get(column.key, Cell())
            numbers += [_raw(cell.mean), _raw(cell.std), cell.n]
        writer.writerow([*_key_cells(table, row), *numbers, ";".join(row.runs), ";".join(row.stale_runs)])
    return buffer.getvalue()


def _raw(value: float | None) -> str:
    return "" if value is None else repr(value)


def _aligned(table: ReportTable, header: list[str]) -> list[bool]:
    """Which columns are right-aligned: runs and the numbers."""
    n_keys = len(_key_headers(table))
    return [name == "runs" for name in header[:n_keys]] + [True] * (len(header) - n_keys)


def to_markdown(table: ReportTable) -> str:
    header = [*_key_headers(table), *map(_header, table.columns)]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if right else "---" for right in _aligned(table, header)) + "|"]
    for row in table.rows:
        cells = [_display(c, row.cells.get(c.key), " ± ", "–") for c in table.columns]
        lines.append("| " + " | ".join([*_key_cells(table, row, "–", short=True), *cells]) + " |")
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(table: ReportTable) -> str:
    """A booktabs tabular (needs \\usepackage{booktabs})."""
    header = [*_key_headers(table), *map(_header, table.columns)]
    spec = "".join("r" if right else "l" for right in _aligned(table, header))
    lines = [r"\begin{tabular}{" + spec + "}", r"\toprule", " & ".join(map(_tex, header)) + r" \\", r"\midrule"]
    for row in table.rows:
        cells = [_display(c, row.cells.get(c.key), r" $\pm$ ", "--") for c in table.columns]
        lines.append(" & ".join([*map(_tex, _key_cells(table, row, "--", short=True)), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_json(table: ReportTable) -> str:
    """One document: per row its keys, every evaluation setting (null when unknown), the runs, the
    stale runs, and per column mean, std and n; `freshness` is the stale note (null when current)."""
    rows = []
    for row in table.rows:
        evaluation = None if row.evaluation is None else {
            SETTING_HEADERS[k]: None if isinstance(v, Unknown) else v for k, v in row.evaluation.items()}
        rows.append({"dataset": row.dataset, "model": row.model, "settings": row.settings, "evaluation": evaluation,
                     "runs": row.runs, "stale": row.stale, "stale_runs": row.stale_runs,
                     "cells": {c.header: {"mean": cell.mean, "std": cell.std, "n": cell.n}
                               for c in table.columns if (cell := row.cells.get(c.key)) is not None}})
    payload = {"split": table.split, "current": table.current, "freshness": table.freshness_note() or None,
               "rows": rows}
    return json.dumps(payload, indent=2) + "\n"


FORMATTERS = {"markdown": to_markdown, "csv": to_csv, "latex": to_latex, "json": to_json}


def format_table(table: ReportTable, fmt: str) -> str:
    if fmt not in FORMATTERS:
        raise UsageError(f"--format {fmt!r}: choose one of: {', '.join(FORMATTERS)}")
    return FORMATTERS[fmt](table)
