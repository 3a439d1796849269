"""A staged neural machine translation pipeline on Keras 3 and TensorFlow."""

__version__ = "0.4.0"
