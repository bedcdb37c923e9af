"""A `ReportTable` as CSV (raw numbers), Markdown or LaTeX (mean +- std, accuracies in percent)."""

from __future__ import annotations

import csv
import io

from duvae_cli.errors import UsageError
from duvae_cli.tables.report import Cell, Column, ReportTable

KEYS = ["dataset", "model", "settings", "runs"]


def _display(column: Column, cell: Cell | None, pm: str, missing: str) -> str:
    if cell is None or cell.mean is None:
        return missing
    scale, digits = (100.0, 1) if column.is_accuracy else (1.0, 1 if column.key[1] == "au" else 2)
    text = f"{cell.mean * scale:.{digits}f}"
    return text if cell.std is None else f"{text}{pm}{cell.std * scale:.{digits}f}"


def _header(column: Column) -> str:
    return f"{column.header} (%)" if column.is_accuracy else column.header


def _key_cells(row) -> list[str]:
    return [row.dataset, row.model, row.settings, str(len(row.runs))]


def to_csv(table: ReportTable) -> str:
    """Raw values: per column `<header>_mean`, `_std` (empty for one run) and `_n`; accuracies as fractions."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*KEYS, *(f"{c.header}_{s}" for c in table.columns for s in ("mean", "std", "n")),
                     "run_dirs"])
    for row in table.rows:
        numbers = []
        for column in table.columns:
            cell = row.cells.get(column.key, Cell())
            numbers += [_raw(cell.mean), _raw(cell.std), cell.n]
        writer.writerow([*_key_cells(row), *numbers, ";".join(row.runs)])
    return buffer.getvalue()


def _raw(value: float | None) -> str:
    return "" if value is None else repr(value)


def to_markdown(table: ReportTable) -> str:
    header = [*KEYS, *map(_header, table.columns)]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    for row in table.rows:
        cells = [_display(c, row.cells.get(c.key), " ± ", "–") for c in table.columns]
        lines.append("| " + " | ".join([*_key_cells(row), *cells]) + " |")
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(table: ReportTable) -> str:
    """A booktabs tabular (needs \\usepackage{booktabs})."""
    header = [*KEYS, *map(_header, table.columns)]
    lines = [r"\begin{tabular}{lll" + "r" * (len(header) - 3) + "}", r"\toprule",
             " & ".join(map(_tex, header)) + r" \\", r"\midrule"]
    for row in table.rows:
        cells = [_display(c, row.cells.get(c.key), r" $\pm$ ", "--") for c in table.columns]
        lines.append(" & ".join([*map(_tex, _key_cells(row)), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


FORMATTERS = {"markdown": to_markdown, "csv": to_csv, "latex": to_latex}


def format_table(table: ReportTable, fmt: str) -> str:
    if fmt not in FORMATTERS:
        raise UsageError(f"--format {fmt!r}: choose one of: {', '.join(FORMATTERS)}")
    return FORMATTERS[fmt](table)
