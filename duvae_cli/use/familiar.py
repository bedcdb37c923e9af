"""How familiar new text is to a run: the share of its tokens outside the run's vocabulary (read as
<unk>), the most frequent of those words, and the sentences longer than any the run trained on.

Every command that reads new text (encode, evaluate --data, generate, classify --data/--predict)
prints `Familiarity.line()` as a note (shown with --quiet too), puts `to_dict()` in its --json, and
applies `InputChecks`: a warning above `--warn-unknown` (default 5% of the tokens) or when any
sentence is longer than the longest training sentence, and a refusal (DuvaeError, exit 1, one line
naming the input) above `--max-unknown` or `--max-longer`. The Python API (`duvae_cli.load`) applies
the same checks with `warnings.warn(UnfamiliarInput)` and the same refusal (docs/api.md).

The longest training sentence is that of the train split the run trained on (its first
`train_examples` when set); an export opened without its data has it recorded at export time
(`longest_train_sentence`; an export made by an earlier duvae only `longest_sentence`, of all splits:
a bound, longer than that is longer than any training sentence); with neither, lengths are not checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from duvae_cli.data.subset import first_examples
from duvae_cli.errors import DuvaeError
from duvae_cli.options import Option, options_dataclass
from duvae_cli.progress import note

SHOWN = 5  # unknown words named in the one-line report (--json has up to inputs.TOP_UNKNOWN)

# How new text is checked (encode, evaluate, generate, classify; `duvae_cli.load(..., checks=...)`).
INPUT_CHECKS = (
    Option("warn_unknown", float, 0.05, "Warn when more than this share of the input's tokens are unknown "
           "to the run's vocabulary (read as <unk>).", range="[0, 1]", metavar="FRACTION"),
    Option("max_unknown", float, None, "Refuse the input (exit 1) when more than this share of its tokens "
           "are unknown to the run's vocabulary.", range="[0, 1]", metavar="FRACTION"),
    Option("max_longer", float, None, "Refuse the input (exit 1) when more than this share of its sentences "
           "are longer than the run's longest training sentence.", range="[0, 1]", metavar="FRACTION"),
)


@options_dataclass(INPUT_CHECKS)
class InputChecks:
    """When new text is warned about (`warn_unknown`) and refused (`max_unknown`, `max_longer`; None: never)."""


class UnfamiliarInput(UserWarning):
    """The Python API's warning: many unknown words, or sentences longer than any in training."""


@dataclass(frozen=True)
class Familiarity:
    """What the run's vocabulary and training lengths make of one text input."""

    source: str
    n_sentences: int
    n_tokens: int
    n_unknown: int
    unknown_words: tuple  # ((word, count), ...), most frequent first
    longest: int  # tokens of the input's longest sentence
    longest_training: int | None  # tokens of the longest training sentence (None: not known)
    n_longer: int  # sentences longer than `longest_training`

    @property
    def unknown_share(self) -> float:
        return self.n_unknown / self.n_tokens if self.n_tokens else 0.0

    @property
    def longer_share(self) -> float:
        return self.n_longer / self.n_sentences if self.n_sentences else 0.0

    def to_dict(self) -> dict:
        return {"source": self.source, "sentences": self.n_sentences, "tokens": self.n_tokens,
                "unknown_tokens": self.n_unknown, "unknown_share": self.unknown_share,
                "unknown_words": [{"word": w, "count": c} for w, c in self.unknown_words],
                "longest": self.longest, "longest_training": self.longest_training,
                "longer_than_training": self.n_longer, "longer_share": self.longer_share}

    def line(self) -> str:
        """`FILE: N sentences, T tokens, U unknown (P%: w 3, x 2, ...); K longer than ...`."""
        words = ", ".join(f"{w!r} {c}" for w, c in self.unknown_words[:SHOWN])
        more = "" if len(self.unknown_words) <= SHOWN else ", ..."
        unknown = f"{self.n_unknown:,} unknown ({100 * self.unknown_share:.2f}%{': ' + words + more if words else ''})"
        if self.longest_training is None:
            longer = f"longest {self.longest} tokens (the run's training lengths are not known)"
        else:
            longer = (f"{self.n_longer:,} longer than the longest training sentence ({self.longest_training} "
                      f"tokens; longest here {self.longest})")
        sentences = f"{self.n_sentences:,} sentence{'' if self.n_sentences == 1 else 's'}"
        return f"{self.source}: {sentences}, {self.n_tokens:,} tokens, {unknown}; {longer}"

    def warnings(self, checks: InputChecks) -> list[str]:
        out = []
        if self.unknown_share > checks.warn_unknown:
            out.append(f"warning: {self.source}: {100 * self.unknown_share:.2f}% of the tokens are unknown to the "
                       f"run's vocabulary (above {100 * checks.warn_unknown:g}%, --warn-unknown) and read as <unk>; "
                       "prepare the text as the run's corpus was (case, tokenization)")
        if self.n_longer:
            out.append(f"warning: {self.source}: {self.n_longer:,} of {self.n_sentences:,} sentences "
                       f"({100 * self.longer_share:.2f}%) are longer than any the run trained on "
                       f"({self.longest_training} tokens; longest here {self.longest})")
        return out

    def refusal(self, checks: InputChecks) -> str | None:
        if checks.max_unknown is not None and self.unknown_share > checks.max_unknown:
            return (f"{self.source}: {100 * self.unknown_share:.2f}% of the tokens are unknown to the run's "
                    f"vocabulary, above --max-unknown {checks.max_unknown:g}")
        if checks.max_longer is not None and self.longer_share > checks.max_longer:
            return (f"{self.source}: {100 * self.longer_share:.2f}% of the sentences are longer than the "
                    f"longest training sentence ({self.longest_training} tokens), above --max-longer "
                    f"{checks.max_longer:g}")
        return None


def longest_training(trained) -> int | None:
    """Tokens of the longest sentence the run trained on (see the module docstring)."""
    dataset, config = trained.dataset, trained.config
    train = dataset.splits.get("train")
    if train is not None and hasattr(train, "lengths") and len(train):
        return int(first_examples(train, min(config.train_examples, len(train))).lengths.max())
    recorded = dataset.attrs.get("longest_train_sentence", dataset.attrs.get("longest_sentence"))
    return None if recorded is None else int(recorded)  # an export without its data (runs/export.py)


def familiarity(data, longest: int | None) -> Familiarity | None:
    """The report of an `inputs.InputData` (None for images)."""
    if data.kind != "text":
        return None
    lengths = data.split.lengths
    return Familiarity(data.source, len(data), data.n_tokens, data.n_unk, tuple(data.unknown),
                       int(lengths.max()) if len(lengths) else 0, longest,
                       0 if longest is None else int((lengths > longest).sum()))


def check_input(data, trained, checks: InputChecks = InputChecks(), reporter=None) -> dict | None:
    """Refuse `data` (an InputData) per `checks` (DuvaeError naming it, before any work), else report it
    on `reporter` as notes; returns `Familiarity.to_dict()` for --json (None for images)."""
    report = familiarity(data, longest_training(trained))
    if report is None:
        return None
    say = None if reporter is None else (lambda line: note(reporter, line))
    review(report, checks, say, say)
    return report.to_dict()


def review(report: Familiarity, checks: InputChecks, inform=None, warn=None) -> None:
    """Refuse the input per `checks` (DuvaeError, one line that says it all), else hand the report's
    line to `inform` and each warning to `warn` (callables taking a line; None: dropped)."""
    refusal = report.refusal(checks)
    if refusal:
        raise DuvaeError(refusal)
    if inform is not None:
        inform(report.line())
    for line in report.warnings(checks) if warn is not None else ():
        warn(line)
