"""From a plan (which files make which split) to a text `Built`: parse, carve, clean, tokenize, encode.

Order of work, so that every count in the summary has one meaning:
1. every file is parsed (errors name file and line) and files of one split are pooled in order;
2. a pool marked for carving is split over its lines by a seeded permutation (`--split` fractions);
   each part keeps file order, so this equals cutting the file first and preparing the parts;
3. empty lines are dropped, per split;
4. the tokenizer is fitted on the train split only (or an imposed vocabulary is read);
5. every split is encoded; sentences with more than --max-length tokens are dropped, per split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from duvae_cli.prepare.options import DEFAULT_SENTENCEPIECE_SIZE, PrepareOptions
from duvae_cli.data.store import SPLITS, UNK_ID, Built, SplitData
from duvae_cli.data.text import Lines, SourceFile, read_lines
from duvae_cli.data.vocab import SentencePieceTokenizer, WordTokenizer, build_word_vocab, read_vocab_file
from duvae_cli.errors import DuvaeError
from duvae_cli.io import sha256_file
from duvae_cli.progress import Reporter


@dataclass
class TextPlan:
    """Which files feed which split. `carve`: one pool split into train/valid/test by --split."""

    splits: dict[str, list[SourceFile]] = field(default_factory=dict)
    carve: list[SourceFile] | None = None
    subsets: dict[str, list[SourceFile]] = field(default_factory=dict)
    vocab_file: SourceFile | None = None  # the corpus's official vocabulary, imposed by default
    notes: list[str] = field(default_factory=list)


@dataclass
class _Pool:
    texts: list[str]
    labels: list[int | None]
    source: str
    dropped: Counter = field(default_factory=Counter)


def build_text(plan: TextPlan, options: PrepareOptions, label_mode: str, unk_aliases: tuple[str, ...],
               checksums: dict, reporter: Reporter) -> Built:
    parsed = {f.path: read_lines(f, label_mode) for f in _all_files(plan)}
    _check_label_bound(parsed.values())
    notes = list(plan.notes)
    if label_mode == "auto":  # say what was detected, per file
        notes.extend(f"{lines.file.path.name}: {'LABEL<TAB>sentence' if lines.labelled else 'plain'} lines"
                     for lines in parsed.values())
    pools = {name: _pool([parsed[f.path] for f in files]) for name, files in plan.splits.items()}
    if plan.carve is not None:
        pools.update(_carve(_pool([parsed[f.path] for f in plan.carve]), options))
    subsets = {name: _pool([parsed[f.path] for f in files]) for name, files in plan.subsets.items()}
    for pool in [*pools.values(), *subsets.values()]:
        _drop_empty(pool)
    tokenizer = _tokenizer(plan, pools["train"], options, unk_aliases, notes)
    built = Built(kind="text", splits={}, vocab=tokenizer.vocab, tokenizer=tokenizer.name,
                  sentencepiece_model=tokenizer.model, notes=notes)
    total = sum(len(p.texts) for p in [*pools.values(), *subsets.values()])
    with reporter.task("encoding sentences", total) as task:  # one bar; no line at all if this fails
        for name in SPLITS:
            if name in pools:
                built.splits[name] = _encode(pools[name], tokenizer, options.max_length, task)
        if len(built.splits["train"].arrays["offsets"]) == 1:
            dropped = ", ".join(f"{n} {why}" for why, n in pools["train"].dropped.items())
            raise DuvaeError(f"{pools['train'].source}: no train sentence left ({dropped})")
        for name, pool in subsets.items():
            built.subsets[name] = _encode(pool, tokenizer, options.max_length, task)
    _warn_unknown(built.splits["train"].arrays["tokens"], notes, reporter)
    built.sources = _sources(_all_files(plan), checksums, notes)
    built.num_labels = _num_labels(built, notes)
    return built


def _check_label_bound(parsed) -> None:
    """A class id above the number of examples cannot be a class of this corpus (num_labels = max + 1
    would make classify allocate for classes with no example): name the first such line."""
    parsed = list(parsed)
    examples = sum(1 for lines in parsed for text in lines.texts if text)
    for lines in parsed:
        for number, label in enumerate(lines.labels, start=1):
            if label is not None and label > examples:
                raise DuvaeError(f"{lines.file.shown}: line {number}: label {label} is above the number of "
                                 f"examples ({examples:,}); labels are class ids 0..K-1")


def _warn_unknown(tokens: np.ndarray, notes: list[str], reporter: Reporter) -> None:
    """More than half the train tokens <unk>: the vocabulary (--min-freq, --vocab-size, --vocab) is
    almost surely not what was meant; the dataset is still written."""
    share = float(np.mean(tokens == UNK_ID)) if len(tokens) else 0.0
    if share > 0.5:
        line = (f"warning: {share:.0%} of the train tokens are <unk>; check --min-freq, --vocab-size or "
                "--vocab")
        notes.append(line)
        reporter.log(line)


def _all_files(plan: TextPlan) -> list[SourceFile]:
    groups = [*plan.splits.values(), plan.carve or [], *plan.subsets.values()]
    files = {f.path: f for group in groups for f in group}
    return list(files.values())


def _pool(parts: list[Lines]) -> _Pool:
    if len({p.labelled for p in parts}) > 1:
        names = ", ".join(p.file.shown for p in parts)
        raise DuvaeError(f"{names}: some of these files are labelled and some are not")
    texts = [t for p in parts for t in p.texts]
    labels = [label for p in parts for label in p.labels]
    return _Pool(texts, labels, " + ".join(p.file.path.name for p in parts))


def _carve(pool: _Pool, options: PrepareOptions) -> dict[str, _Pool]:
    """Seeded split over the pool's lines; each part keeps file order."""
    fractions = options.fractions()
    n = len(pool.texts)
    n_valid, n_test = int(n * fractions[1] + 0.5), int(n * fractions[2] + 0.5)  # halves round up
    order = np.random.Generator(np.random.PCG64(options.seed)).permutation(n)
    bounds = {"train": order[: n - n_valid - n_test], "valid": order[n - n_valid - n_test: n - n_test],
              "test": order[n - n_test:]}
    parts = {}
    for name, index in bounds.items():
        if len(index):
            index = np.sort(index)
            source = f"{pool.source}, {fractions[SPLITS.index(name)]:g} of its lines (seed {options.seed})"
            parts[name] = _Pool([pool.texts[i] for i in index], [pool.labels[i] for i in index], source)
    return parts


def _drop_empty(pool: _Pool) -> None:
    keep = [i for i, text in enumerate(pool.texts) if text]
    pool.dropped["empty"] = len(pool.texts) - len(keep)
    pool.texts = [pool.texts[i] for i in keep]
    pool.labels = [pool.labels[i] for i in keep]


def _tokenizer(plan: TextPlan, train: _Pool, options: PrepareOptions, unk_aliases, notes: list[str]):
    if options.tokenizer == "sentencepiece":
        size = options.vocab_size or DEFAULT_SENTENCEPIECE_SIZE
        notes.append(f"sentencepiece unigram model trained on the train split (requested size {size})")
        return SentencePieceTokenizer.train(train.texts, size, unk_aliases)
    if options.vocab is not None:
        notes.append(f"vocabulary imposed from {options.vocab.name}")
        return WordTokenizer(read_vocab_file(options.vocab), unk_aliases)
    if plan.vocab_file is not None and options.vocab_size is None and options.min_freq == 1:
        notes.append(f"vocabulary imposed from the corpus's {plan.vocab_file.path.name}")
        return WordTokenizer(read_vocab_file(plan.vocab_file.path, plan.vocab_file.shown), unk_aliases)
    if plan.vocab_file is not None:
        notes.append(f"{plan.vocab_file.path.name} ignored: --vocab-size/--min-freq build one from train")
    cut = options.vocab_size is not None or options.min_freq > 1
    notes.append("vocabulary built from the train split, " +
                 ("by frequency" if cut else "in order of first appearance"))
    return WordTokenizer(build_word_vocab(train.texts, options.vocab_size, options.min_freq, unk_aliases),
                         unk_aliases)


def _encode(pool: _Pool, tokenizer, max_length: int | None, task) -> SplitData:
    ids: list[int] = []
    lengths, labels = [], []
    too_long = 0
    for i, (text, label) in enumerate(zip(pool.texts, pool.labels)):
        sentence = tokenizer.encode(text)
        if max_length is not None and len(sentence) > max_length:
            too_long += 1
        else:
            ids.extend(sentence)
            lengths.append(len(sentence))
            labels.append(label)
        if i % 10000 == 9999:
            task.advance(10000)
    task.advance(len(pool.texts) % 10000)
    pool.dropped["too long"] = too_long
    arrays = {"tokens": np.asarray(ids, dtype=np.int32),
              "offsets": np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)}
    if labels and all(label is not None for label in labels):
        arrays["labels"] = np.asarray(labels, dtype=np.int64)
    return SplitData(arrays=arrays, source=pool.source, dropped=dict(pool.dropped))


def _sources(files: list[SourceFile], checksums: dict, notes: list[str]) -> list[dict]:
    sources = []
    for f in files:
        digest = sha256_file(f.path)
        known = checksums.get(f.path.name)
        if known and known != digest:
            notes.append(f"{f.path.name}: sha256 differs from the registry's known copy")
        sources.append({"file": f.path.name, "sha256": digest})
    return sources


def _num_labels(built: Built, notes: list[str]) -> int:
    groups = [*built.splits.values(), *built.subsets.values()]
    labels = [g.arrays["labels"] for g in groups if "labels" in g.arrays and len(g.arrays["labels"])]
    if not labels:
        return 0
    if any("labels" not in g.arrays for g in groups):
        notes.append("only some splits are labelled: " +
                     ", ".join(n for n, g in built.splits.items() if "labels" in g.arrays))
    smallest = min(int(x.min()) for x in labels)
    if smallest > 0:
        notes.append(f"labels start at {smallest}: ids below it are unused classes (num_labels = max + 1)")
    return max(int(x.max()) for x in labels) + 1

