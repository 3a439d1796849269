import math

import numpy as np
import pytest
import tensorflow as tf

from pipeline.constants import PAD_ID
from pipeline.models.losses import MaskedCrossEntropy, masked_accuracy, masked_cross_entropy


def test_uniform_logits_cost_log_vocab_size():
    y_true = np.array([[1, 2, PAD_ID]], np.int32)
    logits = np.zeros((1, 3, 4), np.float32)  # softmax: 1/4 for every token
    assert float(masked_cross_entropy(y_true, logits)) == pytest.approx(math.log(4), abs=1e-6)


def test_padding_positions_do_not_count():
    y_true = np.array([[3, 2, PAD_ID], [PAD_ID, PAD_ID, PAD_ID]], np.int32)
    logits = np.zeros((2, 3, 4), np.float32)
    logits[0, :2] = np.log([1, 1, 2, 4])  # softmax (1/8, 1/8, 1/4, 1/2)
    # Hopelessly wrong predictions at PAD positions: they would dominate the mean if counted.
    logits[0, 2] = logits[1, :] = [-50.0, 50.0, 50.0, 50.0]
    # Real tokens only: -ln(1/2) for id 3, -ln(1/4) for id 2; their mean is 1.5 ln 2.
    expected = (math.log(2) + math.log(4)) / 2
    assert float(masked_cross_entropy(y_true, logits)) == pytest.approx(expected, abs=1e-5)


def test_all_padding_gives_zero_not_nan():
    y_true = np.zeros((1, 2), np.int32)
    assert float(masked_cross_entropy(y_true, np.zeros((1, 2, 4), np.float32))) == 0.0


def one_hot_logits(predicted: list[list[int]], vocab: int = 4) -> np.ndarray:
    """Logits whose argmax is ``predicted``."""
    return np.eye(vocab, dtype=np.float32)[np.array(predicted)] * 10.0


def test_masked_accuracy_counts_real_tokens_only():
    y_true = np.array([[1, 2, PAD_ID], [3, PAD_ID, PAD_ID]], np.int32)
    # Real positions: 1 hit, 2 miss, 3 hit. PAD positions predict PAD: hits that must not count.
    predicted = [[1, 3, PAD_ID], [3, PAD_ID, PAD_ID]]
    assert float(masked_accuracy(y_true, one_hot_logits(predicted))) == pytest.approx(2 / 3)


def test_label_smoothing_mixes_in_the_uniform_cost():
    # p = softmax(log [1, 1, 2, 4]) = (1/8, 1/8, 1/4, 1/2); the reference is id 3.
    y_true = np.array([[3, PAD_ID]], np.int32)
    logits = np.zeros((1, 2, 4), np.float32)
    logits[0, 0] = np.log([1, 1, 2, 4])
    logits[0, 1] = [50.0, -50.0, -50.0, -50.0]  # padding: not counted
    nll = math.log(2)
    uniform = -(math.log(1 / 8) * 2 + math.log(1 / 4) + math.log(1 / 2)) / 4  # mean over the vocabulary
    expected = 0.9 * nll + 0.1 * uniform
    assert float(masked_cross_entropy(y_true, logits, 0.1)) == pytest.approx(expected, abs=1e-5)
    loss = MaskedCrossEntropy(label_smoothing=0.1)
    assert float(loss(y_true, logits)) == pytest.approx(expected, abs=1e-5)
    assert MaskedCrossEntropy.from_config(loss.get_config()).label_smoothing == 0.1


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_gradient_is_softmax_minus_the_smoothed_target(smoothing):
    # p = softmax(log [1, 1, 2, 4]) = (1/8, 1/8, 1/4, 1/2); the reference is id 3; one real token.
    # The target puts 1 - e on id 3 and e/4 on every id: the gradient is p - target.
    y_true = np.array([[3, PAD_ID]], np.int32)
    logits = np.zeros((1, 2, 4), np.float32)
    logits[0, 0] = np.log([1, 1, 2, 4])
    logits[0, 1] = [50.0, -50.0, -50.0, -50.0]  # padding: no gradient
    logits = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = masked_cross_entropy(y_true, logits, smoothing)
    target = np.full(4, smoothing / 4) + np.eye(4)[3] * (1 - smoothing)
    expected = [np.array([1 / 8, 1 / 8, 1 / 4, 1 / 2]) - target, np.zeros(4)]
    np.testing.assert_allclose(tape.gradient(loss, logits)[0], expected, atol=1e-6)
