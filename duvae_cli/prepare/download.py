"""Finding the raw files: a local folder or file, the local corpus copy, or a URL (http, https, file).

Downloads go to a temporary folder that the caller owns; a checksum known to the registry is
verified and a mismatch is an error. Archives (.zip, .tar, .tar.gz, .tgz) are unpacked unless the
recipe reads them itself (Omniglot's zips of PNGs).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.io import sha256_file
from duvae_cli.progress import Reporter

_SCHEMES = ("http", "https", "file", "ftp")
_ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")
RAW_DATA_ENV = "DUVAE_RAW_DATA"


def is_url(text: str) -> bool:
    return urllib.parse.urlparse(text).scheme in _SCHEMES


def local_raw_root() -> Path | None:
    """The folder holding local copies of the corpora: $DUVAE_RAW_DATA, else ../shared/data seen from
    the working directory or from the repository that holds this package."""
    if os.environ.get(RAW_DATA_ENV):
        return Path(os.environ[RAW_DATA_ENV])
    repo = Path(__file__).resolve().parents[2]
    for candidate in (Path.cwd() / ".." / "shared" / "data", repo / ".." / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def resolve_source(spec, source: str | None, workdir: Path, reporter: Reporter) -> tuple[Path, str]:
    """A local folder or file with the raw data, and a note on where it came from."""
    if source is not None and is_url(source):
        return fetch_url(source, spec, workdir, reporter), f"downloaded from {source}"
    if source is not None:
        path = Path(source).expanduser()
        if not path.exists():
            raise UsageError(f"{source}: no such file or folder")
        return path, f"read from {source}"
    root = local_raw_root()
    if spec.local_folder and root is not None and (root / spec.local_folder).is_dir():
        return root / spec.local_folder, f"read from the local copy {root / spec.local_folder}"
    if spec.urls:
        for url in spec.urls:
            _download(url, workdir, spec.checksums, reporter)
        return workdir, "downloaded from the registry's canonical URLs"
    hint = f" ({spec.homepage})" if spec.homepage else ""
    raise UsageError(f"{spec.name}: no local copy found and no direct download URL; pass --source FOLDER "
                     f"holding {', '.join(spec.files)}{hint}")


def fetch_url(url: str, spec, workdir: Path, reporter: Reporter) -> Path:
    """Download `url`; a URL ending in '/' is a folder: fetch every expected file found there."""
    if url.endswith("/"):
        got = [name for name in spec.files if _download(url + name, workdir, spec.checksums, reporter,
                                                        missing_ok=True)]
        if not got:
            raise DuvaeError(f"{url}: none of the expected files found ({', '.join(spec.files)})")
        return workdir
    path = _download(url, workdir, spec.checksums, reporter)
    if spec.unpack and path.name.endswith(_ARCHIVES):
        _unpack(path, workdir / "unpacked")
        path.unlink()
        return workdir / "unpacked"
    return path


def _download(url: str, workdir: Path, checksums: dict, reporter: Reporter, missing_ok: bool = False):
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
    target = workdir / name
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with reporter.task(f"downloading {name}", total) as task:
                while block := response.read(1 << 20):
                    out.write(block)
                    task.advance(len(block))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        target.unlink(missing_ok=True)
        if missing_ok and _is_missing(exc):
            return None
        reason = getattr(exc, "reason", None) or exc
        raise DuvaeError(f"{url}: download failed ({reason})") from None
    expected = checksums.get(name)
    if expected and sha256_file(target) != expected:
        raise DuvaeError(f"{url}: sha256 {sha256_file(target)} differs from the known {expected}")
    return target


def _is_missing(exc: Exception) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 404
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, FileNotFoundError) or isinstance(exc, FileNotFoundError)


def _unpack(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():  # refuse names that escape the folder
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise DuvaeError(f"{archive.name}: unsafe member name {member!r}")
                zf.extractall(dest)
        else:
            with tarfile.open(archive) as tf:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: refuses unsafe members
                    tf.extractall(dest, filter="data")
                else:
                    tf.extractall(dest)
    except (zipfile.BadZipFile, tarfile.TarError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise DuvaeError(f"{archive.name}: not a readable archive ({exc})") from None


def find_files(source: Path, depth: int = 3) -> dict[str, Path]:
    """File name -> path for a file, or for every file up to `depth` folders deep (first in sorted order)."""
    if source.is_file():
        return {source.name: source}
    found: dict[str, Path] = {}
    level = [source]
    for _ in range(depth + 1):
        nxt = []
        for folder in level:
            for entry in sorted(folder.iterdir()):
                if entry.is_dir():
                    nxt.append(entry)
                elif entry.is_file():
                    found.setdefault(entry.name, entry)
        level = nxt
    return found
