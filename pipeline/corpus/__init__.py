"""The parallel corpora, and one reader over them.

- ``multi30k.py``: Multi30k task 1 as a TFDS builder, its pinned digests and download (the default);
- ``catalogue.py``: any translation dataset of the TFDS catalogue, by name;
- ``synthetic.py``: a generated corpus of any size, for the memory benchmark and the tests;
- ``reader.py``: ``prepare``, ``load_split``, ``read_split``: a corpus name and a pair in,
  (source, target) strings out, whichever corpus it is; ``write_split``: a split as one JSON file.
"""

from pipeline.constants import DEFAULT_CORPUS, PAIRS
from pipeline.corpus.multi30k import (
    BASE_URL,
    BASE_URL_ENV,
    DIGESTS_ENV,
    INSTRUCTIONS,
    SHA256,
    SPLITS,
    Multi30k,
    Multi30kConfig,
    digests,
    download,
    file_names,
    locate,
    read_lines,
    sha256,
    split_pair,
    verify,
)
from pipeline.corpus.reader import (
    load_split,
    open_builder,
    pair_languages,
    prepare,
    prepared,
    read_split,
    split_size,
    split_title,
    write_split,
)
from pipeline.errors import CorpusError

__all__ = [
    "BASE_URL", "BASE_URL_ENV", "DEFAULT_CORPUS", "DIGESTS_ENV", "INSTRUCTIONS", "PAIRS", "SHA256",
    "SPLITS", "CorpusError", "Multi30k", "Multi30kConfig", "digests", "download", "file_names",
    "load_split", "locate", "open_builder", "pair_languages", "prepare", "prepared", "read_lines",
    "read_split", "sha256", "split_pair", "split_size", "split_title", "verify", "write_split",
]  # fmt: skip
