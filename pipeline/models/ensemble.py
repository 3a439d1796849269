"""An ensemble: several trained models of one vocabulary searched as one, their log-probabilities
averaged at every step (each member keeps its own state: recurrent states, Transformer caches)."""

from __future__ import annotations

import keras
import tensorflow as tf


def mean_alignment(states: list[dict], attending: list[int]):
    """The mean of the alignments (batch, src_len) of the members ``attending`` (their indices), or
    the first member's empty one (batch, 0) if none attends. Which members attend is the models'
    own word (``attention``): inside search's loop an empty alignment's width is no longer known."""
    if not attending:
        return states[0]["alignment"]  # (batch, 0)
    return tf.add_n([states[i]["alignment"] for i in attending]) / len(attending)  # (batch, src_len)


@keras.saving.register_keras_serializable(package="pipeline")
class Ensemble(keras.Model):
    """Trained models of one vocabulary as one model for search and export: ``encode``,
    ``decode_step``, ``search_width`` and ``vocab_size``, as Seq2Seq and the Transformer have.
    Recurrent members and Transformers can mix. There is no ``probe_positions``: the gradient
    probe reads one trained run, never an ensemble.

    A step's logits are the mean of the members' log-probabilities; search's log_softmax then
    renormalizes their geometric mean (Ensembles of NMT models, e.g. Sennrich et al., 2016).
    With one member the step is that member's, unchanged.

    Args:
        members: built models (``build_model``) of one ``vocab_size``, their weights loaded.

    Call arguments:
        inputs: {"source": (batch, src_len), "target_in": (batch, tgt_len)} int ids.

    Returns:
        the mean log-probabilities (batch, tgt_len, vocab_size), teacher forced.

    Example:
    >>> from pipeline.models.transformer import Transformer
    >>> a, b = Transformer(20, model_dim=8, layers=1, heads=2, ff_dim=16), Transformer(20, 8, 1, 2, 16)
    >>> ensemble = Ensemble([a, b])
    >>> tuple(ensemble({"source": tf.constant([[5, 3]]), "target_in": tf.constant([[2, 6, 7]])}).shape)
    (1, 3, 20)
    """

    def __init__(self, members: list[keras.Model], **kwargs):
        super().__init__(**kwargs)
        if not members:
            raise ValueError("an ensemble needs at least one member")
        sizes = {m.vocab_size for m in members}
        if len(sizes) != 1:
            raise ValueError(
                f"the members' vocabularies differ ({sorted(sizes)}): they must share a tokenizer"
            )
        self.members = list(members)
        self.vocab_size = sizes.pop()
        self.attending = [i for i, m in enumerate(members) if m.attention]
        self.attention = "mean" if self.attending else None  # what export and the page ask of a model

    def build(self, inputs_shape=None):
        for member in self.members:
            if not member.built:
                member.build()
        self.built = True

    def call(self, inputs, training=False):
        log_probs = [tf.nn.log_softmax(m(inputs, training=training)) for m in self.members]
        return tf.add_n(log_probs) / len(log_probs)  # (batch, tgt_len, vocab)

    def encode(self, source):
        """For search: (batch, src_len) ids -> (encoded, state): encoded is the list of the members'
        encoded; state holds the list of their states ("members") and their mean alignment."""
        encoded, states = zip(*(m.encode(source) for m in self.members), strict=True)
        return list(encoded), {
            "members": list(states),
            "alignment": mean_alignment(list(states), self.attending),
        }

    def decode_step(self, token_ids, state, encoded):
        """For search: (batch,) previous ids -> the members' mean log-probabilities (batch, vocab)
        and each member's next state."""
        steps = [
            m.decode_step(token_ids, s, e)
            for m, s, e in zip(self.members, state["members"], encoded, strict=True)
        ]
        states = [s for _, s in steps]
        if len(steps) == 1:
            logits = steps[0][0]  # one member: its own logits, exactly
        else:
            logits = tf.add_n([tf.nn.log_softmax(out) for out, _ in steps]) / len(steps)  # (batch, vocab)
        return logits, {"members": states, "alignment": mean_alignment(states, self.attending)}

    def search_width(self) -> int:
        """Floats a search keeps per row and source piece: every member's, and the mean alignment."""
        return sum(m.search_width() for m in self.members) + 1

    def get_config(self):
        members = [keras.saving.serialize_keras_object(m) for m in self.members]
        return {**super().get_config(), "members": members}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        members = [keras.saving.deserialize_keras_object(m) for m in config.pop("members")]
        return cls(members, **config)
