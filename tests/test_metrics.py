import pytest

from pipeline.metrics import paired_bootstrap, score

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


def test_lowercased_bleu_ignores_case_only():
    result = score(["the cat is on the mat"], ["The cat is on the mat"])
    assert result["bleu_lc"] == 100.0 and result["bleu"] < 100.0
    assert "case:lc" in result["bleu_lc_signature"]


def test_hypotheses_and_references_must_pair_up():
    from pipeline.errors import UserError

    # A UserError: the CLI prints it as one line, with what to do.
    with pytest.raises(UserError, match=r"2 hypotheses for 1 references: .*\(make evaluate\)"):
        score(["a", "b"], ["a"])


SENTENCES = [f"a man number {i} rides a red bike down the street" for i in range(40)]


def test_confidence_interval_is_zero_for_identical_sentences_and_positive_otherwise():
    # Every resample of 40 copies of one hypothesis-reference pair has the same BLEU.
    same = score(["a man rides a bike"] * 40, ["a man rides a red bike"] * 40, bootstrap=200)
    assert same["bleu_ci"] == 0.0
    # Half the sentences perfect, half wrong: resamples vary, so the interval has width.
    mixed = [s if i % 2 else "nothing like it" for i, s in enumerate(SENTENCES)]
    assert score(mixed, SENTENCES, bootstrap=200)["bleu_ci"] > 5.0
    assert "bleu_ci" not in score(mixed, SENTENCES)


def test_paired_bootstrap_tells_a_real_difference_from_none():
    better = SENTENCES
    worse = [s if i % 4 else "nothing like it" for i, s in enumerate(SENTENCES)]
    # As good as the baseline, wrong on other sentences: resamples favour either.
    other = [s if (i + 1) % 4 else "nothing like it" for i, s in enumerate(SENTENCES)]
    p = paired_bootstrap(worse, {"better": better, "other": other}, SENTENCES, samples=200)
    assert p["better"] < 0.05  # better on every resample
    assert p["other"] > 0.2  # no evidence of a difference
