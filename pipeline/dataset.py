"""tf.data input pipelines: encode with SentencePiece, filter, batch by length, pad.

Elements are ``({"source": (batch, src_len), "target_in": (batch, tgt_len)}, target_out)``:
source ends with EOS, target_in starts with BOS, target_out ends with EOS.

Memory is bounded whatever the corpus: a split of at most ``data.cache_pairs`` pairs is encoded
once and cached, a larger one is read and encoded again every epoch (streamed); the shuffle
buffer and the length-sorted pools hold a fixed number of examples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

from pipeline import corpus
from pipeline.config import DataConfig
from pipeline.constants import BOS_ID, DEFAULT_CORPUS, EOS_ID, PAD_ID
from pipeline.errors import UserError

AUTOTUNE = tf.data.AUTOTUNE


def load_sentencepiece(model_path: Path) -> tf_text.SentencepieceTokenizer:
    """In-graph SentencePiece, the same op the exported model uses."""
    return tf_text.SentencepieceTokenizer(model=Path(model_path).read_bytes(), out_type=tf.int32)


def dense_rows(*ids):
    """Unbatched ragged rows come back with rank-0-ragged specs; make them plain tensors."""
    return tuple(tf.convert_to_tensor(x) for x in ids)


def encoded_pairs(
    pair: str,
    split: str,
    data_dir: Path,
    spm_model: Path,
    limit: int | None = None,
    corpus_name: str = DEFAULT_CORPUS,
    targets: str | None = None,
):
    """(source ids + EOS, BOS + target ids, target ids + EOS), each a 1-D int32 tensor; the targets
    are the lines of ``targets`` instead of the split's references when it is given."""
    tokenizer = load_sentencepiece(spm_model)
    pairs = corpus.load_split(pair, split, data_dir, corpus_name=corpus_name)
    if targets:
        pairs = with_targets(pairs, Path(targets), corpus.split_size(pair, split, data_dir, corpus_name))
    if limit:
        pairs = pairs.take(limit)

    def encode(source, target):
        source, target = tokenizer.tokenize(source), tokenizer.tokenize(target)  # ragged (batch, None)
        eos = tf.fill([source.nrows(), 1], EOS_ID)
        bos = tf.fill([target.nrows(), 1], BOS_ID)
        return (
            tf.concat([source, eos], axis=1),
            tf.concat([bos, target], axis=1),
            tf.concat([target, eos], axis=1),
        )

    # Tokenizing a thousand sentences per op call is much cheaper than one at a time.
    return pairs.batch(1024).map(encode, num_parallel_calls=AUTOTUNE).unbatch().map(dense_rows)


def with_targets(pairs: tf.data.Dataset, targets: Path, size: int) -> tf.data.Dataset:
    """(source, target) strings: each source with its line of ``targets``, which must have one per pair."""
    with targets.open(encoding="utf-8") as lines:
        count = sum(1 for _ in lines)
    if count != size:
        raise UserError(
            f"{targets} has {count} lines for the split's {size} pairs: translate it again (make distill)"
        )
    return tf.data.Dataset.zip((pairs, tf.data.TextLineDataset(str(targets)))).map(
        lambda pair, target: (pair[0], target)
    )


def pooled_batches(examples: tf.data.Dataset, batch_size: int, pool_batches: int) -> tf.data.Dataset:
    """Ragged batches of near-equal lengths: each pool of ``pool_batches * batch_size`` examples
    is sorted by target length, then source length, and cut into batches, so padding stays
    small. The target comes first because the decoder and the output layer cost the most."""

    def sort(source, target_in, target_out):  # ragged (pool, None)
        order = tf.argsort(target_out.row_lengths() * 4096 + source.row_lengths(), stable=True)
        return tf.gather(source, order), tf.gather(target_in, order), tf.gather(target_out, order)

    pools = examples.ragged_batch(batch_size * pool_batches).map(sort, num_parallel_calls=AUTOTUNE)
    return pools.unbatch().map(dense_rows).ragged_batch(batch_size)


def batches(
    pair: str,
    split: str,
    data_dir: Path,
    spm_model: Path,
    cfg: DataConfig,
    training: bool,
    corpus_name: str = DEFAULT_CORPUS,
    epoch: int = 0,
) -> tf.data.Dataset:
    """One epoch of padded batches of similar length; training batches are filtered and shuffled.

    Training shuffles the examples, sorts them by length within pools (``pooled_batches``)
    and shuffles the batches again, so every epoch sees new batches and each batch holds
    sentences of nearly the same length. Epoch ``epoch`` (0-based) is shuffled by ``cfg.seed``
    and ``epoch`` alone: the same batches in any process, whatever it drew before.

    A split larger than ``cfg.cache_pairs`` streams, and its batch count is left unknown: counting
    would cost a whole extra pass over the corpus, for the first epoch's progress bar only.
    """
    one_epoch, cached = epoch_maker(pair, split, data_dir, spm_model, cfg, training, corpus_name)
    batched = one_epoch(epoch)
    if not cached:
        return batched.prefetch(AUTOTUNE)
    # The batch count is fixed, so counting once gives Keras a real progress bar.
    # Counting also fills the cache, so it costs nothing later.
    count = int(batched.reduce(0, lambda n, _: n + 1))
    return batched.apply(tf.data.experimental.assert_cardinality(count)).prefetch(AUTOTUNE)


def training_epochs(
    pair: str,
    data_dir: Path,
    spm_model: Path,
    cfg: DataConfig,
    epochs: range,
    corpus_name: str = DEFAULT_CORPUS,
) -> tuple[tf.data.Dataset, int, int]:
    """The training batches of ``epochs`` (0-based) one after another, each epoch as
    ``batches(..., epoch=e)`` gives it; with the batches and the real target tokens of one epoch
    (every epoch has the same).

    For ``fit(steps_per_epoch=...)``: a run resumed after epoch ``first`` trains on
    ``range(first, last)``, the batches it would have seen had it never stopped.
    """
    one_epoch, _ = epoch_maker(pair, "train", data_dir, spm_model, cfg, True, corpus_name)
    steps, tokens = count_batches_and_tokens(one_epoch(epochs.start))  # and fills the cache
    stream = functools.reduce(tf.data.Dataset.concatenate, [one_epoch(e) for e in epochs or [epochs.start]])
    return stream.prefetch(AUTOTUNE), steps, tokens


def epoch_maker(
    pair: str,
    split: str,
    data_dir: Path,
    spm_model: Path,
    cfg: DataConfig,
    training: bool,
    corpus_name: str = DEFAULT_CORPUS,
) -> tuple[Callable[[int], tf.data.Dataset], bool]:
    """``(one_epoch, cached)``: ``one_epoch(epoch)`` is that epoch's batches. Every epoch reads one
    cache of the encoded split, when ``cached``."""
    limit = cfg.train_limit if split == "train" else cfg.eval_limit
    targets = cfg.train_targets if split == "train" else None  # validation keeps its references
    examples = encoded_pairs(pair, split, data_dir, spm_model, limit, corpus_name, targets)
    size = corpus.split_size(pair, split, data_dir, corpus_name=corpus_name)
    cached = min(size, limit or size) <= cfg.cache_pairs
    if cached:
        examples = examples.cache()
    if training:
        examples = examples.filter(
            lambda s, ti, to: tf.logical_and(tf.size(s) <= cfg.max_length, tf.size(to) <= cfg.max_length)
        )

    def one_epoch(epoch: int) -> tf.data.Dataset:
        # Two seeds of this epoch's own, one per shuffle: Python ints, as tf.data's seeding wants
        # them (a tensor seed fails in a graph where the global seed is 0).
        seed = cfg.seed * 1_000_003 + 2 * epoch
        epoch_examples = examples
        if training:
            epoch_examples = examples.shuffle(50_000, seed=seed, reshuffle_each_iteration=False)
        batched = pooled_batches(epoch_examples, cfg.batch_size, cfg.pool_batches)
        if training:
            batched = batched.shuffle(cfg.pool_batches, seed=seed + 1, reshuffle_each_iteration=False)
        return batched.map(
            lambda s, ti, to: ({"source": s.to_tensor(), "target_in": ti.to_tensor()}, to.to_tensor()),
            num_parallel_calls=AUTOTUNE,
        )

    return one_epoch, cached


def count_batches_and_tokens(batches: tf.data.Dataset) -> tuple[int, int]:
    """Batches and real (unpadded) target tokens in one pass over ``batches``."""

    def add(counts, batch):
        real = tf.reduce_sum(tf.cast(tf.not_equal(batch[1], PAD_ID), tf.int64))
        return counts[0] + 1, counts[1] + real

    steps, tokens = batches.reduce((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), add)
    return int(steps), int(tokens)
