"""An export folder on disk (`duvae export`; docs/use.md): its files, and their verification.

    block, weights = verify_export(OUT)   # every file the card lists has its sha256, else one line
    dataset = own_vocabulary(OUT, name)   # an export without its data: its own symbols, no splits

Opening one (load.py `load_trained` -> `load_export`) verifies every listed file's sha256
first: a file that differs, a missing one, or a file duvae reads that the card does not list, is
refused in one line. The export's identity is the sha256 of the run's checkpoint it holds
(`checkpoint_sha256` in config.json's `duvae_export` block and in model.safetensors' metadata),
which its metrics.csv rows and every number computed from it carry. Writing one is export.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from duvae_cli.data import binding
from duvae_cli.data.store import ImageDataset, TextDataset
from duvae_cli.errors import DuvaeError
from duvae_cli.io import sha256_bytes
from duvae_cli.runs.card import read_checksums
from duvae_cli.runs.layout import EXPORT_KEY, EXPORT_WEIGHTS
from duvae_cli.runs.trust import check_folder, check_vocab_lines

FORMAT = "duvae-export/1"
CARD = "README.md"
VOCAB, SENTENCEPIECE = "vocab.txt", "tokenizer.model"
# Every file duvae reads from an export: each one present must be listed in the card.
READ = (EXPORT_WEIGHTS, "config.json", "manifest.json", binding.FILENAME, VOCAB, SENTENCEPIECE, "history.csv",
        "metrics.csv", "probe.csv")
REQUIRED = (EXPORT_WEIGHTS, "config.json", "manifest.json", binding.FILENAME)
MAX_CARD = 10 * 1024 * 1024


def listed_sha256(folder: Path) -> dict[str, str]:
    """{file: sha256} from the card's `sha256` block (README.md); DuvaeError if it has none."""
    card = Path(folder) / CARD
    try:
        if card.stat().st_size > MAX_CARD:
            raise DuvaeError(f"{card}: larger than {MAX_CARD // 2**20} MiB; not a duvae model card")
        text = card.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DuvaeError(f"{card}: unreadable model card ({type(exc).__name__}); the export is incomplete") from None
    return read_checksums(text, card)


def verify_export(folder: Path) -> tuple[dict, bytes]:
    """(the config.json export block, the bytes of model.safetensors) once every file duvae reads
    is listed in the card with its sha256 and matches it; DuvaeError in one line otherwise."""
    folder = Path(folder)
    check_folder(folder, "the export")
    listed = listed_sha256(folder)
    unlisted = [name for name in READ if (folder / name).exists() and name not in listed]
    missing = [name for name in REQUIRED if name not in listed]
    if unlisted or missing:
        name = (unlisted or missing)[0]
        raise DuvaeError(f"{folder / name}: {'not listed' if unlisted else 'missing'} in the sha256 list of "
                         f"{folder / CARD}; the export was altered or is incomplete")
    weights = b""
    for name, sha in listed.items():
        data = _read_listed(folder / name)
        if sha256_bytes(data) != sha:
            raise DuvaeError(f"{folder / name}: sha256 differs from the one listed in {folder / CARD}; "
                             "the export was altered or damaged (get a fresh copy from its author)")
        weights = data if name == EXPORT_WEIGHTS else weights
    block = json.loads((folder / "config.json").read_text(encoding="utf-8")).get(EXPORT_KEY)
    if not isinstance(block, dict) or block.get("format") != FORMAT or block.get("checkpoint") not in ("best", "last"):
        raise DuvaeError(f"{folder / 'config.json'}: no valid {EXPORT_KEY} block; not a duvae export")
    return block, weights


def _read_listed(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DuvaeError(f"{path}: listed in the model card but unreadable ({exc.strerror or exc}); "
                         "the export is incomplete") from None


def export_sha256(folder: Path, checkpoint: str) -> str | None:
    """The identity of the export's checkpoint (tables/fresh.py) once verified; None for the other name."""
    block, _ = verify_export(folder)
    return block["checkpoint_sha256"] if block["checkpoint"] == checkpoint else None


def own_vocabulary(folder: Path, name: str, longest: int | None = None, longest_train: int | None = None):
    """A dataset without splits that reads and writes the export's symbols: its vocab.txt (and
    tokenizer.model), checked against binding.json's fingerprint; image exports need none."""
    bound = binding.read(folder)
    form = bound["format"]
    common = dict(name=name, kind=form["kind"], splits={}, subsets={}, sha256=bound.get("dataset_sha256", ""))
    if form["kind"] == "image":
        return ImageDataset(vocab=[], attrs={"kind": "image"}, path=folder / binding.FILENAME, **common)
    text = (folder / VOCAB).read_text(encoding="utf-8")
    vocab = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
    check_vocab_lines(vocab, folder / VOCAB)
    piece = (folder / SENTENCEPIECE).read_bytes() if (folder / SENTENCEPIECE).is_file() else None
    if binding.input_format(TextDataset(vocab=vocab, sentencepiece_model=piece, attrs=_text_attrs(form),
                                        path=folder / VOCAB, **common)) != form:
        raise DuvaeError(f"{folder / VOCAB}: does not match the vocabulary fingerprint of "
                         f"{folder / binding.FILENAME}; the export is inconsistent")
    attrs = {**_text_attrs(form), **({} if longest is None else {"longest_sentence": int(longest)}),
             **({} if longest_train is None else {"longest_train_sentence": int(longest_train)})}
    return TextDataset(vocab=vocab, sentencepiece_model=piece, attrs=attrs, path=folder / VOCAB, **common)


def _text_attrs(form: dict) -> dict:
    return {"kind": "text", "tokenizer": form.get("tokenizer"), **(form.get("special_ids") or {})}
