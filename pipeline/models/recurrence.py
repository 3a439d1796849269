"""Recurrent cells run with their input projections hoisted out of the time loop.

A cell's update is ``f(x_t @ W + h_{t-1} @ U)``. Keras computes ``x_t @ W`` inside the
loop, one small matrix product per step; here ``x @ W`` is one large product over all
steps before the loop, and the loop keeps only what depends on the previous state. The
functions read the weights of the Keras cells (``SimpleRNNCell``, ``GRUCell`` with
``reset_after``, ``LSTMCell``), so the layers, their weights and checkpoints stay the
Keras ones, and the result is the Keras cell's, up to float32 rounding.
"""

from __future__ import annotations

import tensorflow as tf


def input_bias(cell):
    """The bias added to ``x @ W``: all of it, except the recurrent row of GRU's (2, 3 * units) bias."""
    return cell.bias[0] if len(cell.bias.shape) == 2 else cell.bias


def recurrent_bias(cell):
    """The bias added to ``h @ U``: GRU's second row (reset_after), zero for the other cells."""
    return cell.bias[1] if len(cell.bias.shape) == 2 else tf.zeros([cell.recurrent_kernel.shape[-1]])


def update(cell_type: str, projected, states: list, recurrent_kernel, bias) -> list:
    """One step from the projected inputs (..., batch, gates * units): the new state tensors.

    ``recurrent_kernel`` (..., units, gates * units) and ``bias``, ``recurrent_bias(cell)``,
    are read once outside the loop: a slice inside it would cost a full-size gradient
    scatter at every step.
    """
    h = states[0]
    inner = tf.matmul(h, recurrent_kernel) + bias  # (..., batch, gates * units)
    if cell_type == "rnn":
        return [tf.tanh(projected + inner)]
    if cell_type == "gru":
        x_z, x_r, x_h = tf.split(projected, 3, axis=-1)
        h_z, h_r, h_h = tf.split(inner, 3, axis=-1)
        z, r = tf.sigmoid(x_z + h_z), tf.sigmoid(x_r + h_r)
        candidate = tf.tanh(x_h + r * h_h)
        return [z * h + (1.0 - z) * candidate]
    i, f, g, o = tf.split(projected + inner, 4, axis=-1)  # lstm
    c = tf.sigmoid(f) * states[1] + tf.sigmoid(i) * tf.tanh(g)
    return [tf.sigmoid(o) * tf.tanh(c), c]


def bidirectional(cell_type: str, forward, backward, inputs, mask, initial_states: list):
    """Both directions of a bidirectional RNN in one loop, as Keras' ``Bidirectional`` computes them.

    inputs: (batch, src_len, in_dim), right-padded; mask: (batch, src_len) bool.
    A padded step leaves the state as it was and outputs zeros, so the forward final state
    is the one after the last real token, and the backward direction starts there.

    Returns outputs (batch, src_len, 2 * units) and the final forward and backward states.
    """
    inputs = tf.transpose(inputs, [1, 0, 2])  # (src_len, batch, in_dim)
    real = tf.transpose(mask)[:, :, None]  # (src_len, batch, 1)
    forward_in = tf.tensordot(inputs, forward.kernel, axes=1) + input_bias(forward)  # (src_len, batch, G)
    backward_in = tf.tensordot(inputs, backward.kernel, axes=1) + input_bias(backward)
    # The backward direction reads the sentence from its end: step t sees position src_len - 1 - t.
    backward_in, backward_real = tf.reverse(backward_in, [0]), tf.reverse(real, [0])
    weights_f = forward.recurrent_kernel, recurrent_bias(forward)
    weights_b = backward.recurrent_kernel, recurrent_bias(backward)

    def step(carry, elems):
        states_f, states_b, _, _ = carry
        x_f, x_b, real_f, real_b = elems
        new_f = update(cell_type, x_f, states_f, *weights_f)
        new_b = update(cell_type, x_b, states_b, *weights_b)
        new_f = [tf.where(real_f, n, s) for n, s in zip(new_f, states_f, strict=True)]  # padding: keep
        new_b = [tf.where(real_b, n, s) for n, s in zip(new_b, states_b, strict=True)]
        return new_f, new_b, tf.where(real_f, new_f[0], 0.0), tf.where(real_b, new_b[0], 0.0)

    zeros = tf.zeros_like(initial_states[0])
    states_f, states_b, out_f, out_b = tf.scan(
        step,
        (forward_in, backward_in, real, backward_real),
        initializer=(initial_states, initial_states, zeros, zeros),
    )  # every output time-major: (src_len, batch, ...)
    outputs = tf.concat([out_f, tf.reverse(out_b, [0])], axis=-1)  # (src_len, batch, 2 * units)
    return tf.transpose(outputs, [1, 0, 2]), [s[-1] for s in states_f], [s[-1] for s in states_b]
