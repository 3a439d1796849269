"""The decoding values a translate request may not carry, each with the words of its 400: shared by
test_protocol (parsed in process) and test_serving (sent over HTTP to a served export)."""

from __future__ import annotations


def decoding(beam: str, penalty: str) -> bytes:
    """A translate request with these JSON tokens (NaN and Infinity are not JSON; Python reads them)."""
    inputs = f'{{"sources": ["a"], "beam_size": {beam}, "length_penalty": {penalty}}}'
    return f'{{"signature_name": "translate", "inputs": {inputs}}}'.encode()


REFUSED = [  # (beam_size, length_penalty, words in the 400's error)
    ("5", "NaN", "input length_penalty must be finite, from 0 to 10, got nan"),
    ("5", "Infinity", "input length_penalty must be finite, from 0 to 10, got inf"),
    ("5", "-Infinity", "input length_penalty must be finite"),
    ("5", "-0.01", "input length_penalty must be finite, from 0 to 10, got -0.01"),
    ("5", "10.01", "input length_penalty must be finite, from 0 to 10, got 10.01"),
    ("5", "1e9", "input length_penalty must be finite, from 0 to 10"),
    ("0", "1", "input beam_size must be at least 1 (a larger one than 32 is searched at 32), got 0"),
    ("-3", "1", "input beam_size must be at least 1"),
    ("1.5", "1", "input beam_size must hold whole numbers within int32"),
    ("NaN", "1", "input beam_size"),
    ('"5"', "1", "input beam_size must hold numbers"),
    ("true", "1", "input beam_size must hold numbers"),
    ("5", '"x"', "input length_penalty must hold numbers"),
]
