import functools
import gzip
import http.server
import shutil
import socket
import threading
import time

import pytest

from pipeline import corpus
from pipeline.corpus import CorpusError

SMALL = "val.de.gz"  # a small file for the download tests


def test_file_names_cover_every_split_and_both_sides():
    assert corpus.file_names("de-en") == [
        "train.de.gz", "train.en.gz", "val.de.gz", "val.en.gz",
        "test_2016_flickr.de.gz", "test_2016_flickr.en.gz",
    ]  # fmt: skip
    assert set(corpus.file_names("en-cs")) <= set(corpus.SHA256)


def test_split_pair():
    assert corpus.split_pair("fr-en") == ("fr", "en")
    assert corpus.split_pair("en-de") == ("en", "de")


@pytest.mark.parametrize("pair", ["de-fr", "xx-en", "de_en", ""])
def test_unknown_pair_is_refused(pair):
    with pytest.raises(ValueError, match="unknown language pair"):
        corpus.file_names(pair)


def test_every_pinned_digest_matches_the_shared_files(real_corpus, monkeypatch):
    monkeypatch.delenv(corpus.DIGESTS_ENV, raising=False)  # the pinned table itself
    for name in corpus.SHA256:
        assert corpus.verify(real_corpus / name, name) == real_corpus / name


def test_a_digest_table_replaces_the_pinned_one(tmp_path, monkeypatch):
    table = tmp_path / "SHA256SUMS"
    table.write_text("ab" * 32 + "  val.de.gz\n" + "cd" * 32 + " *train.en.gz\n")  # text and binary mode
    monkeypatch.setenv(corpus.DIGESTS_ENV, str(table))
    assert corpus.digests() == {"val.de.gz": "ab" * 32, "train.en.gz": "cd" * 32}
    monkeypatch.delenv(corpus.DIGESTS_ENV)
    assert corpus.digests() is corpus.SHA256


def test_corrupted_copy_is_rejected_with_both_digests(shared_corpus, tmp_path):
    copy = tmp_path / SMALL
    data = bytearray((shared_corpus / SMALL).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    copy.write_bytes(bytes(data))
    with pytest.raises(CorpusError, match=corpus.digests()[SMALL]) as error:
        corpus.verify(copy, SMALL)
    assert corpus.sha256(copy) in str(error.value)


def test_file_under_another_name_is_rejected(shared_corpus):
    with pytest.raises(CorpusError, match="SHA-256"):
        corpus.verify(shared_corpus / "val.en.gz", SMALL)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep the test output clean
        pass


@pytest.fixture
def direct(monkeypatch):
    """Loopback URLs must not go through a proxy that urllib would take from the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def mirror(tmp_path, direct):
    """A loopback HTTP server over an empty folder: ``(folder, base_url)``."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def test_download_fetches_and_verifies(shared_corpus, mirror, tmp_path):
    folder, base_url = mirror
    shutil.copy(shared_corpus / SMALL, folder / SMALL)
    dest = tmp_path / "downloads"
    path = corpus.download(SMALL, dest, base_url=base_url)
    assert path == dest / SMALL
    assert path.read_bytes() == (shared_corpus / SMALL).read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == [SMALL]  # no temporary file left behind


def test_download_with_wrong_content_leaves_nothing(shared_corpus, mirror, tmp_path):
    folder, base_url = mirror
    shutil.copy(shared_corpus / "val.en.gz", folder / SMALL)  # the right name, the wrong bytes
    dest = tmp_path / "downloads"
    with pytest.raises(CorpusError, match=corpus.digests()[SMALL]):
        corpus.download(SMALL, dest, base_url=base_url)
    assert list(dest.iterdir()) == []


def test_download_of_missing_file_is_a_corpus_error(mirror, tmp_path):
    _, base_url = mirror  # serves 404 for everything
    with pytest.raises(CorpusError, match="could not download"):
        corpus.download(SMALL, tmp_path / "downloads", base_url=base_url)
    assert list((tmp_path / "downloads").iterdir()) == []


class StallingHandler(http.server.BaseHTTPRequestHandler):
    """Promises a whole file, sends a few bytes, then goes quiet."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"partial")
        self.wfile.flush()
        time.sleep(2)

    def log_message(self, format, *args):
        pass


def test_interrupted_download_leaves_nothing(tmp_path, direct):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StallingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    dest = tmp_path / "downloads"
    try:
        with pytest.raises(CorpusError, match="could not download"):
            corpus.download(
                SMALL, dest, base_url=f"http://127.0.0.1:{server.server_address[1]}/", timeout=0.3
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert list(dest.iterdir()) == []


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_without_manual_dir_fails_fast_with_instructions(tmp_path, monkeypatch, direct):
    monkeypatch.setenv(corpus.BASE_URL_ENV, f"http://127.0.0.1:{closed_port()}/")
    start = time.monotonic()
    with pytest.raises(CorpusError, match="manual dir") as error:
        corpus.locate(corpus.file_names("de-en"), manual_dir=None, download_dir=tmp_path / "downloads")
    assert time.monotonic() - start < 10
    assert "could not download" in str(error.value)
    assert "train.de.gz" in str(error.value)  # it names the files to fetch


def test_prepare_with_empty_manual_dir_offline_is_a_corpus_error(tmp_path, monkeypatch, direct):
    # TFDS signals an empty manual dir with an AssertionError; the builder must turn that into
    # "download instead", and the failed download into the instructions.
    monkeypatch.setenv(corpus.BASE_URL_ENV, f"http://127.0.0.1:{closed_port()}/")
    empty = tmp_path / "raw"
    empty.mkdir()
    with pytest.raises(CorpusError, match="manual dir"):
        corpus.prepare("de-en", tmp_path / "tfds", manual_dir=empty)


def test_locate_prefers_the_manual_dir(shared_corpus, tmp_path, monkeypatch, direct):
    # A dead mirror: any attempt to download would fail the test.
    monkeypatch.setenv(corpus.BASE_URL_ENV, f"http://127.0.0.1:{closed_port()}/")
    names = corpus.file_names("fr-en")
    paths = corpus.locate(names, manual_dir=shared_corpus, download_dir=tmp_path / "downloads")
    assert paths == {name: shared_corpus / name for name in names}


def test_prepare_keeps_every_example_in_corpus_order(prepared_data, shared_corpus):
    builder = corpus.Multi30k(config="de-en", data_dir=str(prepared_data))
    counts = {split: info.num_examples for split, info in builder.info.splits.items()}
    assert counts == {"train": 29000, "validation": 1014, "test": 1000}

    def first_line(name: str) -> str:
        with gzip.open(shared_corpus / name, "rt", encoding="utf-8") as f:
            return f.readline().rstrip("\n")

    source, target = next(corpus.load_split("de-en", "test", prepared_data).as_numpy_iterator())
    assert source.decode() == first_line("test_2016_flickr.de.gz")
    assert target.decode() == first_line("test_2016_flickr.en.gz")
    last = list(corpus.load_split("de-en", "validation", prepared_data).as_numpy_iterator())[-1]
    assert last[0].decode() == corpus.read_lines(shared_corpus / "val.de.gz")[-1]
