import pytest

from pipeline.evaluate import score

REFERENCES = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]


def test_identical_text_scores_100():
    result = score(REFERENCES, REFERENCES)
    assert result["bleu"] == 100.0
    assert result["chrf"] == 100.0


def test_known_pair_has_its_hand_computed_bleu():
    # Hypothesis "the cat sat on the mat", reference "the cat is on the mat", 6 tokens each.
    #   1-grams: the, cat, on, the(2nd), mat match; sat does not          -> 5/6
    #   2-grams: "the cat", "on the", "the mat" of 5                      -> 3/5
    #   3-grams: "on the mat" of 4                                        -> 1/4
    #   4-grams: none of 3; sacreBLEU's exp smoothing makes the first
    #            zero count 1 / (2 * 3)                                   -> 1/6
    # Equal lengths: brevity penalty 1.
    # BLEU = (5/6 * 3/5 * 1/4 * 1/6) ** (1/4) = (1/48) ** (1/4) = 0.379918 -> 37.99
    result = score(["the cat sat on the mat"], ["the cat is on the mat"])
    assert result["bleu"] == pytest.approx(37.99, abs=0.005)
    assert "smooth:exp" in result["bleu_signature"]
    assert "tok:13a" in result["bleu_signature"]


def test_scores_are_cased():
    # sacreBLEU's default is case-sensitive; the pipeline reports cased BLEU.
    assert score(["the cat is on the mat"], ["The cat is on the mat"])["bleu"] < 100.0


def test_unrelated_text_scores_near_zero():
    result = score(["xyz qqq"], ["the cat is on the mat"])
    assert result["bleu"] < 1.0
    assert result["chrf"] < 10.0
