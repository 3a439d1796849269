"""A synthetic corpus in Multi30k's layout, for a machine without the real one.

The 12 raw files (train, val, test_2016_flickr x de, en, fr, cs; gzip, one sentence per
line, Multi30k's line counts) hold sentences of a small grammar, translated word for word
with each language's own word order, so tiny models learn them. ``SHA256SUMS`` beside them
is the digest table that the builder takes instead of its pinned one (``MULTI30K_SHA256SUMS``).
"""

from __future__ import annotations

import gzip
import hashlib
import random
from pathlib import Path

SIZES = {"train": 29000, "val": 1014, "test_2016_flickr": 1000}

# One entry per concept: English, German, French, Czech.
NOUNS = [("man", "Mann", "homme", "muž"), ("woman", "Frau", "femme", "žena"),
         ("dog", "Hund", "chien", "pes"), ("child", "Kind", "enfant", "dítě"),
         ("boy", "Junge", "garçon", "chlapec"),
         ("girl", "Mädchen", "fille", "dívka"), ("street", "Straße", "rue", "ulice"),
         ("beach", "Strand", "plage", "pláž"), ("park", "Park", "parc", "park"),
         ("bike", "Fahrrad", "vélo", "kolo"), ("ball", "Ball", "balle", "míč"),
         ("car", "Auto", "voiture", "auto")]  # fmt: skip
ADJECTIVES = [("young", "junger", "jeune", "mladý"), ("old", "alter", "vieux", "starý"),
              ("small", "kleiner", "petit", "malý"), ("red", "roter", "rouge", "červený"),
              ("happy", "fröhlicher", "heureux", "šťastný"),
              ("tall", "großer", "grand", "vysoký")]  # fmt: skip
VERBS = [("runs", "läuft", "court", "běží"), ("sits", "sitzt", "assis", "sedí"),
         ("plays", "spielt", "joue", "hraje"), ("waits", "wartet", "attend", "čeká"),
         ("stands", "steht", "debout", "stojí")]  # fmt: skip
PLACES = [("on the", "auf der", "sur la", "na"), ("in the", "in dem", "dans le", "v"),
          ("near the", "neben dem", "près du", "u")]  # fmt: skip
ARTICLE = ("a", "ein", "un", "")  # Czech has none
LANGUAGES = ("en", "de", "fr", "cs")


AND = ("and", "und", "et", "a")


def clause(rng: random.Random) -> list[str]:
    """One clause in the four languages: an (adjective) noun, a verb, a place."""
    adjective, noun, verb = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(VERBS)
    place, where = rng.choice(PLACES), rng.choice(NOUNS)
    out = []
    for i, lang in enumerate(LANGUAGES):
        # French puts the adjective after the noun
        subject = f"{noun[i]} {adjective[i]}" if lang == "fr" else f"{adjective[i]} {noun[i]}"
        out.append(" ".join(w for w in [ARTICLE[i], subject, verb[i], place[i], where[i]] if w))
    return out


def sentence(rng: random.Random) -> dict[str, str]:
    """Clauses joined by "and": mostly one to three, and one sentence in a hundred of twelve,
    so that some are longer than any length limit the tests set."""
    count = 12 if rng.random() < 0.01 else rng.choice([1, 1, 1, 2, 2, 3])
    clauses = [clause(rng) for _ in range(count)]
    out = {}
    for i, lang in enumerate(LANGUAGES):
        text = f" {AND[i]} ".join(c[i] for c in clauses) + "."
        out[lang] = text[0].upper() + text[1:]
    return out


def write_corpus(folder: Path, seed: int = 0) -> Path:
    """Writes the 12 files and their SHA256SUMS to ``folder``; returns the SHA256SUMS path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    digests = []
    for stem, size in SIZES.items():
        sentences = [sentence(rng) for _ in range(size)]
        for lang in LANGUAGES:
            name = f"{stem}.{lang}.gz"
            text = "".join(s[lang] + "\n" for s in sentences).encode("utf-8")
            (folder / name).write_bytes(gzip.compress(text, mtime=0))  # the same bytes every time
            digests.append(f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}\n")
    (folder / "SHA256SUMS").write_text("".join(digests))
    return folder / "SHA256SUMS"
