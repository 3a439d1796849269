import pytest

from pipeline.bench.flops import TRAINING_PASSES, training_step_flops
from pipeline.config import ModelConfig
from pipeline.models import VARIANTS, build_model

RECURRENT = sorted(v for v in VARIANTS if v != "transformer")  # tests/test_transformer.py: the other

VOCAB = 50


def small(variant: str) -> ModelConfig:
    return ModelConfig(variant=variant, embedding_dim=6, units=5, attention_units=7, dropout=0.0)


def test_hand_computed_batch():
    # gru_bahdanau, E=2, U=3, A=4, V=5; memory 2U = 6.
    # per source token: 2 directions * 2*3*3*(2+3) = 180, keys 2*6*4 = 48      -> 228
    # per target token: cell 2*3*3*(2+6+3) = 198, readout 2*(3+6+2)*3 = 66,
    #                   projection 2*3*5 = 30, query 2*3*4 = 24                 -> 318
    # per (source, target) pair: score 2*4 + context 2*6                        -> 20
    # per sentence: bridge 2*6*3                                                -> 36
    # sentences (2, 1) and (3, 2): 456+318+40+36 + 684+636+120+36 = 2326 forward
    cfg = ModelConfig(variant="gru_bahdanau", embedding_dim=2, units=3, attention_units=4)
    assert training_step_flops(cfg, 5, [2, 3], [1, 2]) == 3 * 2326


@pytest.mark.parametrize("variant", RECURRENT)
def test_one_token_each_way_costs_two_flops_per_kernel_weight(variant):
    # With one source and one target token every dense kernel multiplies once: 2 FLOPs per
    # weight. Attention adds the products that have no weights: its score and context.
    cfg = small(variant)
    model = build_model(cfg, VOCAB)
    kernels = sum(int(w.numpy().size) for w in model.weights if "kernel" in w.path)
    memory = 2 * cfg.units
    _, attention = VARIANTS[variant]
    weightless = {None: 0, "bahdanau": 2 * memory, "luong": 2 * cfg.units + 2 * memory}[attention]
    assert training_step_flops(cfg, VOCAB, [1], [1]) == TRAINING_PASSES * (2 * kernels + weightless)


def test_the_transformers_count_is_two_flops_per_kernel_weight_and_its_weightless_products():
    # One token each way: every kernel multiplies once; then the tied output projection (the
    # embedding, not a kernel) and the scores and sums of the attentions, 4 * d each: one in each
    # encoder layer, two in each decoder layer.
    cfg = ModelConfig(variant="transformer", embedding_dim=8, ff_dim=12, layers=3, decoder_layers=2,
                      heads=2, dropout=0.0)  # fmt: skip
    model = build_model(cfg, VOCAB)
    kernels = sum(int(w.numpy().size) for w in model.weights if "kernel" in w.path)
    weightless = 2 * 8 * VOCAB + (3 + 2 * 2) * 4 * 8
    assert training_step_flops(cfg, VOCAB, [1], [1]) == TRAINING_PASSES * (2 * kernels + weightless)


def test_attention_grows_with_source_times_target():
    cfg = small("gru_bahdanau")
    plain = small("gru")
    extra = [training_step_flops(cfg, VOCAB, [s], [t]) - training_step_flops(plain, VOCAB, [s], [t])
             for s, t in ((4, 4), (8, 8))]  # fmt: skip
    # keys, query and the wider cell grow linearly; score and context with s * t.
    assert extra[1] > 2 * extra[0]


def test_the_transformers_step_by_hand():
    # d=2, ff=4, one layer each side, vocabulary 5, one source and one target token:
    # source 1 * (8*4 + 4*2*4) + 4*4 = 80 (encoder q k v o and feed-forward, decoder cross k v);
    # target 8*4 + 4*4 + 4*2*4 + 2*2*5 = 100 (self q k v o, cross q o, feed-forward, output);
    # scores and sums, 4*2 = 8 each: source x target, source x source, causal target x target.
    cfg = ModelConfig(variant="transformer", embedding_dim=2, ff_dim=4, layers=1, decoder_layers=1, heads=1)
    assert training_step_flops(cfg, 5, [1], [1]) == TRAINING_PASSES * (80 + 100 + 8 + 8 + 8)
    # two target tokens: the causal pairs are 3 (1 + 2), not 4
    two = training_step_flops(cfg, 5, [1], [2]) // TRAINING_PASSES
    assert two == 80 + 2 * 100 + 2 * 8 + 8 + 3 * 8
