"""Corpus scores with sacreBLEU: BLEU and chrF (cased, detokenized), lowercased BLEU,
bootstrap confidence intervals and paired bootstrap significance."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest

from pipeline.errors import MismatchError

BOOTSTRAP_SAMPLES = 1000  # sacreBLEU's default for --confidence and --paired-bs


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Cased corpus BLEU of detokenized text, 0-100."""
    return BLEU().corpus_score(hypotheses, [references]).score


def check_pairs(hypotheses: list[str], references: list[str]) -> None:
    """A MismatchError (one line for the user) unless there is one hypothesis per reference."""
    if len(hypotheses) != len(references):
        raise MismatchError(
            f"{len(hypotheses)} hypotheses for {len(references)} references: the hypotheses are not "
            "of this split; translate it again (make evaluate)"
        )


def score(hypotheses: list[str], references: list[str], bootstrap: int = 0) -> dict:
    """Corpus BLEU and chrF, cased and on detokenized text, with sacreBLEU's signatures.

    ``bleu_lc`` is lowercased BLEU, comparable to the many published figures that lowercase.
    With ``bootstrap`` resamples, ``bleu_ci`` is the half-width of the 95% confidence
    interval of BLEU (sacreBLEU's bootstrap, seed 12345).
    """
    check_pairs(hypotheses, references)
    cased, lowercased, chrf = BLEU(), BLEU(lowercase=True), CHRF()
    bleu_score = cased.corpus_score(hypotheses, [references], n_bootstrap=max(bootstrap, 1))
    chrf_score = chrf.corpus_score(hypotheses, [references])
    result = {
        "bleu": round(bleu_score.score, 2),
        "bleu_lc": round(lowercased.corpus_score(hypotheses, [references]).score, 2),
        "chrf": round(chrf_score.score, 2),
        "bleu_detail": str(bleu_score),
        "bleu_signature": str(cased.get_signature()),
        "bleu_lc_signature": str(lowercased.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }
    if bootstrap > 1:
        result["bleu_ci"] = round(float(bleu_score._ci), 2)
    return result


def paired_bootstrap(
    baseline: list[str],
    systems: dict[str, list[str]],
    references: list[str],
    samples: int = BOOTSTRAP_SAMPLES,
) -> dict[str, float]:
    """p-value of each system's BLEU difference from ``baseline`` (paired bootstrap resampling,
    Koehn 2004, as ``sacrebleu --paired-bs``). The baseline itself is left out."""
    named = [("baseline", baseline), *systems.items()]
    _, scores = PairedTest(named, {"BLEU": BLEU()}, [references], test_type="bs", n_samples=samples)()
    return {name: float(result.p_value) for name, result in zip(systems, scores["BLEU"][1:], strict=True)}
