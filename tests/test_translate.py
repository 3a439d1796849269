import io

import pytest

from pipeline.evaluate import load_translator, translate_all
from pipeline.export import export
from pipeline.translate import translate_stream


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """The base directory of one exported tiny model."""
    base = tmp_path_factory.mktemp("saved") / "tiny"
    export(tiny_run, base)
    return base


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
