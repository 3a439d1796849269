import keras
import numpy as np
import pytest

from pipeline.config import ModelConfig
from pipeline.constants import BOS_ID, EOS_ID, PAD_ID
from pipeline.decoding.probe import check_unrolled, gradient_flow
from pipeline.models import VARIANTS, build_model
from pipeline.models.seq2seq import Seq2Seq

RECURRENT = sorted(v for v in VARIANTS if v != "transformer")  # tests/test_transformer.py: the other

VOCAB = 20
TINY = {"embedding_dim": 8, "units": 6, "attention_units": 5, "dropout": 0.0}

# Three sources of one length (no padding); the targets may be padded.
SOURCE = np.array([[5, 6, 7, 8, 9, EOS_ID], [10, 11, 12, 13, 14, EOS_ID], [15, 16, 17, 18, 19, EOS_ID]])
TARGET_IN = np.array([[BOS_ID, 11, 12, 13], [BOS_ID, 14, 15, PAD_ID], [BOS_ID, 16, PAD_ID, PAD_ID]])
TARGET_OUT = np.array([[11, 12, 13, EOS_ID], [14, 15, EOS_ID, PAD_ID], [16, EOS_ID, PAD_ID, PAD_ID]])
SRC_LEN = SOURCE.shape[1]


def tiny_model(variant: str) -> Seq2Seq:
    keras.utils.set_random_seed(0)
    return build_model(ModelConfig(variant=variant, **TINY), VOCAB)


def zero_forward_recurrence(model: Seq2Seq) -> None:
    """h_{t+1}'s pre-activation no longer reads h_t in the encoder's forward cell."""
    kernel = model.encoder.rnn.forward_layer.cell.recurrent_kernel
    kernel.assign(np.zeros(kernel.shape, kernel.dtype))


def flow(model: Seq2Seq) -> np.ndarray:
    return gradient_flow(model, SOURCE, TARGET_IN, TARGET_OUT)


@pytest.mark.parametrize("variant", RECURRENT)
def test_unroll_is_the_models_computation_and_flow_is_a_profile(variant):
    model = tiny_model(variant)
    assert check_unrolled(model, SOURCE) < 1e-5
    g = flow(model)
    assert g.shape == (SRC_LEN,)
    assert np.all(np.isfinite(g))
    assert np.all(g >= 0)


def test_without_recurrence_or_attention_only_the_last_position_gets_gradient():
    # The decoder sees only the final states, and h_{t+1} no longer depends on h_t.
    model = tiny_model("rnn")
    zero_forward_recurrence(model)
    assert check_unrolled(model, SOURCE) < 1e-5
    g = flow(model)
    assert np.all(g[:-1] == 0)
    assert g[-1] > 0


def test_attention_reaches_every_position_despite_zeroed_recurrence():
    model = tiny_model("gru_bahdanau")
    zero_forward_recurrence(model)
    g = flow(model)
    assert np.all(g > 0)


def test_attention_alone_reaches_every_position_of_a_tanh_rnn():
    # A GRU still passes h_t on through its update gate (z * h_t), so zeroing its kernel
    # does not cut the chain. A tanh RNN with the same zeroed kernel has no path from
    # h_t (t < src_len - 1) to the loss except attention. Not a registry variant.
    keras.utils.set_random_seed(0)
    model = Seq2Seq(VOCAB, cell="rnn", attention="bahdanau", **TINY)
    model.build()
    zero_forward_recurrence(model)
    g = flow(model)
    assert np.all(g > 0)


def test_padded_source_is_refused():
    model = tiny_model("gru")
    padded = SOURCE.copy()
    padded[0, -1] = PAD_ID
    with pytest.raises(ValueError, match="padding"):
        gradient_flow(model, padded, TARGET_IN, TARGET_OUT)
    with pytest.raises(ValueError, match="padding"):
        check_unrolled(model, padded)
