"""Text recipes: which canonical file is which split, and what to do when some are missing.

Policy for partially present canonical files (docs/datasets.md):
- prepare the splits whose files are present; a missing valid or test file means no such split;
- no train file but named subsets (short yelp's label budgets): the largest subset is the train split;
- no train file and one file only (Yahoo's val.txt, Shen's dev pair): carve train/valid/test from it
  with the seeded --split fractions;
- anything else without a train file is an error that lists the expected names.
Each choice made leaves a note in the summary.
"""

from __future__ import annotations

import re
from pathlib import Path

from duvae_cli.prepare.download import find_files
from duvae_cli.prepare.options import PrepareOptions
from duvae_cli.data.text import SourceFile
from duvae_cli.prepare.textbuild import TextPlan, build_text
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.progress import Reporter

# Split -> alternative file names, first found wins ({name} is the corpus prefix).
_YANG = {"train": ("{name}.train.txt", "train.txt"), "valid": ("{name}.valid.txt", "val.txt"),
         "test": ("{name}.test.txt", "test.txt")}
_PTB = {"train": ("ptb.train.txt",), "valid": ("ptb.valid.txt",), "test": ("ptb.test.txt",)}
_SHORT_YELP = {"train": ("short_yelp.train.txt",), "valid": ("short_yelp.valid.txt",),
               "test": ("short_yelp.test.txt",)}
_SHEN = {"train": "train", "valid": "dev", "test": "test"}  # our split -> Shen et al.'s file infix
_SUBSET = re.compile(r"^short_yelp\.train\.(\d+)\.txt$")


def build_corpus(spec, source: Path | None, options: PrepareOptions, reporter: Reporter):
    """The recipe of every text dataset, `text` included."""
    if spec.name == "text":
        plan = _text_plan(source, options)
    else:
        plan = _canonical_plan(spec, find_files(source), source, options)
    return build_text(plan, options, spec.labels, spec.unk_aliases, spec.checksums, reporter)


def _canonical_plan(spec, files: dict[str, Path], source: Path, options: PrepareOptions) -> TextPlan:
    found, subsets = _find_splits(spec, files)
    plan = TextPlan(subsets=subsets)
    if "vocab.txt" in files and spec.name != "ptb":
        plan.vocab_file = SourceFile(files["vocab.txt"])
    if "train" in found:
        plan.splits = found
    elif subsets:
        largest = max(subsets, key=int)
        plan.splits = {"train": subsets[largest], **found}
        plan.notes.append(f"no full train file: the largest subset ({largest}) is the train split")
    elif len(found) == 1:
        ((only, files_),) = found.items()
        plan.carve = files_
        names = " + ".join(f.path.name for f in files_)
        plan.notes.append(f"no train file, only {names} ({only}): train/valid/test carved from it "
                          f"with fractions {options.split} and seed {options.seed}")
    else:
        expected = ", ".join(_expected_names(spec))
        what = ", ".join(f.path.name for fs in found.values() for f in fs) or "none of them"
        raise DuvaeError(f"{source}: no train file (expected {expected}; found {what})")
    for split in ("valid", "test"):
        if split not in found and plan.carve is None:
            plan.notes.append(f"no {split} file: no {split} split written")
    return plan


def _find_splits(spec, files: dict[str, Path]):
    """split -> [SourceFile], and subset name -> [SourceFile], from the files present."""
    found: dict[str, list[SourceFile]] = {}
    if spec.name == "yelp-sentiment":
        for split, infix in _SHEN.items():
            parts = [SourceFile(files[f"sentiment.{infix}.{k}"], label=k) for k in (0, 1)
                     if f"sentiment.{infix}.{k}" in files]
            if parts:
                found[split] = parts
        return found, {}
    table = {"ptb": _PTB, "short-yelp": _SHORT_YELP}.get(spec.name, _YANG)
    for split, names in table.items():
        for pattern in names:
            name = pattern.format(name=spec.name)
            if name in files:
                found[split] = [SourceFile(files[name])]
                break
    subsets = {}
    if spec.name == "short-yelp":
        matches = sorted((int(m.group(1)), path) for name, path in files.items() if (m := _SUBSET.match(name)))
        subsets = {str(n): [SourceFile(path)] for n, path in matches}
    return found, subsets


def _expected_names(spec) -> list[str]:
    return list(spec.files)


def _text_plan(source: Path | None, options: PrepareOptions) -> TextPlan:
    """`duvae prepare text`: explicit --train/--valid/--test, or one file carved by --split."""
    given = {split: path for split, path in (("train", options.train), ("valid", options.valid),
                                             ("test", options.test)) if path is not None}
    if source is not None:
        if source.is_dir():
            raise UsageError(f"--source {source}: text needs one file (or --train/--valid/--test)")
        given = {"train": source}
    if "train" not in given:
        raise UsageError("text needs --train FILE (with --valid/--test, or alone to carve them by --split)")
    plan = TextPlan()
    if set(given) == {"train"}:
        plan.carve = [SourceFile(given["train"])]
        plan.notes.append(f"one file: train/valid/test carved from {given['train'].name} with fractions "
                          f"{options.split} and seed {options.seed}")
    else:
        plan.splits = {split: [SourceFile(path)] for split, path in given.items()}
        plan.notes.extend(f"no {s} file: no {s} split written" for s in ("valid", "test") if s not in given)
    return plan
