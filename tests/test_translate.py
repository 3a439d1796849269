import io

import pytest
import tensorflow as tf

from pipeline.decoding.evaluate import load_translator, translate_all
from pipeline.decoding.translate import translate_stream


@pytest.fixture(scope="module")
def exported(exported_tiny):
    """The base directory of the tiny run's export (conftest)."""
    return exported_tiny.parent


def run(model, text: str, batch_size: int = 64) -> tuple[int, list[str]]:
    out = io.StringIO()
    count = translate_stream(model, io.StringIO(text), out, batch_size=batch_size)
    assert out.getvalue().endswith("\n") or not text
    return count, out.getvalue().split("\n")[:-1]


def test_one_line_out_per_line_in_and_empty_stays_empty(exported):
    lines = ["Ein Hund rennt.", "", "Zwei Kinder spielen.", "   ", "Eine Frau liest."]
    count, out = run(exported, "\n".join(lines) + "\n")
    assert count == len(lines) == len(out)
    assert out[1] == "" and out[3] == ""
    # The others are the model's translations, in input order.
    translator, _ = load_translator(exported)
    expected = translate_all(translator, [lines[0], lines[2], lines[4]], progress=False)
    assert [out[0], out[2], out[4]] == expected
    assert all("\n" not in t for t in expected)


def test_batches_smaller_than_the_input_keep_the_order(exported):
    lines = ["Ein Hund rennt.", "", "", "Zwei Kinder spielen.", "Eine Frau liest."]
    _, whole = run(exported / "1", "\n".join(lines) + "\n")  # a version directory works as well
    # Batch size 2 makes a batch of only empty lines and a last, partial batch.
    count, batched = run(exported, "\n".join(lines), batch_size=2)  # no final newline
    assert count == len(lines) == len(batched)
    assert batched[1:3] == ["", ""]
    # The translations differ, so a line out of place would be caught; each sentence's length
    # cap comes from its own source, so the batch size changes nothing.
    assert len({whole[i] for i in (0, 3, 4)}) == 3, whole
    assert batched == whole


def test_empty_input_writes_nothing(exported):
    assert run(exported, "") == (0, [])


def test_a_lowered_beam_is_said_on_stderr_and_returned(exported, capsys):
    # 128 sentences cut to 255 pieces and EOS: 32768 rows x pieces at one beam, so the model's
    # memory bound fits beam 4, not the 5 asked for, in one batch of 128; batches of 16 fit 32.
    lines = "".join("Hund " * 300 + "\n" for _ in range(128))
    count, out = run(exported, lines, batch_size=128)
    assert count == len(out) == 128
    warning = "warning: beam 5 lowered to 4 in 1 batch(es) of 128 sentences"
    assert warning in capsys.readouterr().err
    translator, _ = load_translator(exported)
    assert translate_all(translator, ["Hund " * 300] * 128, batch_size=128, progress=False).beam_size == 4
    assert warning in capsys.readouterr().err
    assert translate_all(translator, ["Hund " * 300] * 128, batch_size=16, progress=False).beam_size == 5
    assert "lowered" not in capsys.readouterr().err


class Recorder:
    """A stand-in for the SavedModel: upper-cases each sentence and keeps the batches it was called with."""

    def __init__(self):
        self.batches = []

    def translate(self, texts, beam, alpha):
        batch = [t.decode() for t in texts.numpy()]
        self.batches.append(batch)
        return {"translations": tf.constant([t.upper().encode() for t in batch])}


def test_batches_go_by_length_and_the_translations_come_back_in_the_order_given():
    sources = ["ccc", "a", "eeeee", "bb", "dddd", "x"]
    translator = Recorder()
    assert translate_all(translator, sources, 5, 0.6, batch_size=2, progress=False) == [
        "CCC", "A", "EEEEE", "BB", "DDDD", "X"
    ]  # fmt: skip
    assert translator.batches == [["a", "x"], ["bb", "ccc"], ["dddd", "eeeee"]]  # ties keep their order
