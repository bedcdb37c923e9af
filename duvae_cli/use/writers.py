"""Where `duvae encode` puts its rows, chosen by the extension of `--out` (none: JSON lines on stdout).

Every format holds, per example in input order: `index` (0-based example number), `line` (1-based
line in a text file; -1 for other inputs), `label` (-1 when unlabelled) and the float32 arrays of
`encode.columns` (`mean`, `logvar`, with a flow `zT`), each of D values.
- `.npy`: one structured array; `np.load(path)["mean"]` is (n, D) float32 (no pickle needed);
- `.csv`: columns index, line, label, mean_0..mean_{D-1}, logvar_0.., (zT_0..), floats written with
  9 significant digits (round-trips float32 exactly);
- `.h5`: datasets index, line, label, mean, logvar, (zT); attributes describe the run and the data;
- stdout: one JSON object a line {"index", "line", "label", "mean": [...], ...}.

Files are filled in place under a temporary name and renamed when complete; memory holds one chunk.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from duvae_cli.errors import UsageError
from duvae_cli.io import atomic_path, write_stdout

FORMATS = (".npy", ".csv", ".h5")


def check_out(out: Path | None) -> None:
    if out is not None and out.suffix.lower() not in FORMATS:
        raise UsageError(f"--out {out}: the extension names the format; choose one of: {', '.join(FORMATS)} "
                         "(or leave --out unset for JSON lines on stdout)")


class _Rows:
    """Common bookkeeping: the per-example integer columns."""

    def __init__(self, n: int, dim: int, names: tuple[str, ...], meta: dict):
        self.n, self.dim, self.names, self.meta = n, dim, names, meta

    def ints(self, indices: np.ndarray, lines: np.ndarray | None, labels: np.ndarray | None) -> dict:
        return {"index": indices.astype(np.int64),
                "line": lines[indices] if lines is not None else np.full(len(indices), -1, np.int64),
                "label": labels[indices] if labels is not None else np.full(len(indices), -1, np.int64)}


class NpyWriter(_Rows):
    def __enter__(self):
        self._atomic = atomic_path(self.meta["out"], suffix=".npy")
        tmp = self._atomic.__enter__()
        dtype = [("index", "<i8"), ("line", "<i8"), ("label", "<i8")] + [(k, "<f4", (self.dim,)) for k in self.names]
        self.array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(self.n,))
        return self

    def write(self, indices, values: dict, lines=None, labels=None) -> None:
        for key, column in {**self.ints(indices, lines, labels), **values}.items():
            self.array[key][indices] = column

    def __exit__(self, *exc):
        self.array.flush()
        del self.array
        return self._atomic.__exit__(*exc)


class H5Writer(_Rows):
    def __enter__(self):
        import h5py

        self._atomic = atomic_path(self.meta["out"], suffix=".h5")
        self.file = h5py.File(self._atomic.__enter__(), "w")
        for key in ("index", "line", "label"):
            self.file.create_dataset(key, shape=(self.n,), dtype="<i8")
        for key in self.names:
            self.file.create_dataset(key, shape=(self.n, self.dim), dtype="<f4", chunks=True, compression="gzip")
        for key, value in self.meta.items():
            self.file.attrs[key] = str(value) if isinstance(value, Path) else value
        return self

    def write(self, indices, values: dict, lines=None, labels=None) -> None:
        lo, hi = int(indices[0]), int(indices[-1]) + 1  # chunks are consecutive
        for key, column in {**self.ints(indices, lines, labels), **values}.items():
            self.file[key][lo:hi] = column

    def __exit__(self, *exc):
        self.file.close()
        return self._atomic.__exit__(*exc)


class CsvWriter(_Rows):
    def __enter__(self):
        self._atomic = atomic_path(self.meta["out"], suffix=".csv")
        self.handle = open(self._atomic.__enter__(), "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle, lineterminator="\n")
        self.writer.writerow(["index", "line", "label"] + [f"{k}_{d}" for k in self.names for d in range(self.dim)])
        return self

    def write(self, indices, values: dict, lines=None, labels=None) -> None:
        ints = self.ints(indices, lines, labels)
        floats = np.concatenate([values[k] for k in self.names], axis=1)  # (B, len(names) * D)
        for i in range(len(indices)):
            self.writer.writerow([int(ints["index"][i]), int(ints["line"][i]), int(ints["label"][i])]
                                 + [f"{v:.9g}" for v in floats[i].tolist()])

    def __exit__(self, *exc):
        self.handle.close()
        return self._atomic.__exit__(*exc)


class JsonLinesWriter(_Rows):
    def __enter__(self):
        return self

    def write(self, indices, values: dict, lines=None, labels=None) -> None:
        ints, rows = self.ints(indices, lines, labels), []
        for i in range(len(indices)):
            row = {key: int(column[i]) for key, column in ints.items()}
            row.update({key: [float(v) for v in values[key][i]] for key in self.names})
            rows.append(json.dumps(row) + "\n")
        write_stdout("".join(rows))  # a closed reader (`| head`) ends the command quietly

    def __exit__(self, *exc):
        return False


def open_writer(out: Path | None, n: int, dim: int, names: tuple[str, ...], meta: dict):
    """A context manager with `.write(indices, values, lines, labels)` for the format of `out`."""
    check_out(out)
    if out is None:
        return JsonLinesWriter(n, dim, names, meta)
    kind = {".npy": NpyWriter, ".csv": CsvWriter, ".h5": H5Writer}[out.suffix.lower()]
    return kind(n, dim, names, {**meta, "out": Path(out)})
