"""Training: the loop around Keras fit, its callbacks, checkpoints and the rate schedule."""
