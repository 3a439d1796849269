"""Multi30k task 1 as a TensorFlow Datasets builder, one config per language pair.

The raw files come from a local folder (TFDS ``manual_dir``) when they are
there, and are downloaded from the dataset's public repository otherwise.
Either way every file is checked against the SHA-256 digest pinned below
before a single line of it is read.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import tensorflow_datasets as tfds

from pipeline.constants import PAIRS
from pipeline.errors import ConfigError, CorpusError

# Files of github.com/multi30k/dataset, data/task1/raw/, byte for byte.
BASE_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/"
BASE_URL_ENV = "MULTI30K_BASE_URL"  # overrides BASE_URL, e.g. for a mirror
# A sha256sum-format file whose digests replace the pinned ones: another corpus in this layout.
DIGESTS_ENV = "MULTI30K_SHA256SUMS"
SPLITS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}

SHA256 = {
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
}

INSTRUCTIONS = (
    "Put the Multi30k task-1 raw files ({files}) from "
    "github.com/multi30k/dataset (data/task1/raw/) in one folder and pass it as "
    "the manual dir (`python -m pipeline data --manual-dir DIR`, or `make data RAW_DIR=DIR`)."
)


def file_names(pair: str) -> list[str]:
    """The raw files a language pair needs, all splits."""
    source, target = split_pair(pair)
    return [f"{stem}.{lang}.gz" for stem in SPLITS.values() for lang in (source, target)]


def split_pair(pair: str) -> tuple[str, str]:
    if pair not in PAIRS:
        raise ConfigError(f"unknown language pair {pair!r}; choose one of {', '.join(PAIRS)}")
    source, target = pair.split("-")
    return source, target


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digests() -> dict[str, str]:
    """The expected SHA-256 of each raw file: the pinned table, or the file ``$MULTI30K_SHA256SUMS``
    names (``sha256sum`` format), for a corpus in Multi30k's layout that is not Multi30k."""
    table = os.environ.get(DIGESTS_ENV)
    if not table:
        return SHA256
    lines = [line.split() for line in Path(table).read_text().splitlines() if line.strip()]
    return {name.lstrip("*"): digest for digest, name in lines}


def verify(path: Path, name: str) -> Path:
    """Returns ``path`` if its SHA-256 digest is the one expected for ``name``."""
    actual, expected = sha256(path), digests()[name]
    if actual != expected:
        raise CorpusError(
            f"{path} has SHA-256 {actual}, expected {expected}: the file is corrupt "
            "or not the Multi30k original. Delete it and run the data stage again."
        )
    return path


def download(name: str, dest_dir: Path, base_url: str | None = None, timeout: float = 30.0) -> Path:
    """Downloads one raw file into ``dest_dir`` (atomically) and verifies it."""
    base_url = base_url or os.environ.get(BASE_URL_ENV) or BASE_URL
    url = base_url.rstrip("/") + "/" + name
    dest = dest_dir / name
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(dir=dest_dir, delete=False)
    try:
        with tmp, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, tmp)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        os.unlink(tmp.name)
        raise CorpusError(
            f"could not download {url} ({error}) and no local copy was found.\n"
            + INSTRUCTIONS.format(files=", ".join(sorted(digests())))
        ) from error
    try:
        verify(Path(tmp.name), name)
    except CorpusError:
        os.unlink(tmp.name)
        raise
    os.replace(tmp.name, dest)
    return dest


def locate(names: list[str], manual_dir: Path | None, download_dir: Path) -> dict[str, Path]:
    """Finds each file in ``manual_dir``, else in ``download_dir``, else downloads it."""
    paths = {}
    for name in names:
        for folder in (manual_dir, download_dir):
            if folder is not None and (folder / name).is_file():
                paths[name] = verify(folder / name, name)
                break
        else:
            paths[name] = download(name, download_dir)
    return paths


def read_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


class Multi30kConfig(tfds.core.BuilderConfig):
    """One translation direction, e.g. ``de-en``."""

    def __init__(self, *, pair: str, **kwargs):
        super().__init__(name=pair, description=f"Multi30k task 1, {pair}", **kwargs)
        self.source, self.target = split_pair(pair)


class Multi30k(tfds.core.GeneratorBasedBuilder):
    """Multi30k task 1: Flickr30k image descriptions in en, de, fr and cs."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [Multi30kConfig(pair=pair) for pair in PAIRS]
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS.format(files="train/val/test_2016_flickr .{lang}.gz")

    def _info(self) -> tfds.core.DatasetInfo:
        source, target = self.builder_config.source, self.builder_config.target
        return self.dataset_info_from_configs(
            features=tfds.features.Translation(languages=(source, target)),
            supervised_keys=(source, target),
            homepage="https://github.com/multi30k/dataset",
            disable_shuffling=True,  # keep the corpus order, so hypotheses line up with the files
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        try:
            manual_dir = Path(dl_manager.manual_dir)
        except AssertionError:  # TFDS's way of saying the folder is absent or empty
            manual_dir = None
        pair = self.builder_config.name
        paths = locate(file_names(pair), manual_dir, Path(dl_manager.download_dir) / "multi30k")
        return {split: self._generate_examples(paths, stem) for split, stem in SPLITS.items()}

    def _generate_examples(self, paths: dict[str, Path], stem: str):
        source, target = self.builder_config.source, self.builder_config.target
        sources = read_lines(paths[f"{stem}.{source}.gz"])
        targets = read_lines(paths[f"{stem}.{target}.gz"])
        if len(sources) != len(targets):
            raise CorpusError(f"{stem}: {len(sources)} {source} lines but {len(targets)} {target} lines")
        for index, (src, tgt) in enumerate(zip(sources, targets, strict=True)):
            yield index, {source: src, target: tgt}
