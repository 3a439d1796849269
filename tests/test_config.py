import dataclasses
import json
import re

import pytest

from pipeline import layout
from pipeline.config import PRESETS, Config, load_config, make_config, save_config, to_dict
from pipeline.errors import ConfigError


def test_presets_exist_and_differ():
    assert {"tiny", "quick", "converge", "full"} <= set(PRESETS)
    tiny, quick, converge, full = (make_config(name) for name in ("tiny", "quick", "converge", "full"))
    assert tiny.preset == "tiny" and tiny.model.units < quick.model.units < full.model.units
    assert tiny.data.train_limit == 2000
    assert quick.train.time_budget_minutes is None  # epochs, not minutes
    # The comparison and the long run share one recipe; the model's size and, for the shorter
    # schedule, the dropout differ.
    assert converge.train.label_smoothing == full.train.label_smoothing
    assert converge.model.dropout < full.model.dropout
    assert (
        converge.train.length_penalties == full.train.length_penalties
        and len(full.train.length_penalties) > 1
    )


def test_overrides_are_parsed_to_python_values():
    cfg = make_config(
        "quick",
        overrides=[
            "train.epochs=3",
            "model.variant=lstm",
            "data.train_limit=None",
            "data.pool_batches=8",
            "train.learning_rate=0.01",
        ],
    )
    assert cfg.train.epochs == 3
    assert cfg.model.variant == "lstm"
    assert cfg.data.train_limit is None
    assert cfg.data.pool_batches == 8
    assert cfg.train.learning_rate == 0.01


def test_override_wins_over_preset_and_variant():
    cfg = make_config("tiny", variant="gru", overrides=["model.variant=lstm", "model.units=8"])
    assert (cfg.model.variant, cfg.model.units) == ("lstm", 8)
    assert make_config("tiny", variant="gru").model.variant == "gru"


@pytest.mark.parametrize("override", ["train.epoch=3", "nosection.epochs=3", "epochs=3", "pair.x=1"])
def test_unknown_setting_is_refused(override):
    with pytest.raises(ValueError, match="unknown setting"):
        make_config("tiny", overrides=[override])


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown preset"):
        make_config("huge")


def test_save_load_round_trip(tmp_path):
    cfg = make_config("tiny", pair="fr-en", variant="lstm_bahdanau", overrides=["train.epochs=2"])
    assert cfg != Config()
    loaded = load_config(save_config(cfg, tmp_path / "run" / layout.CONFIG))
    assert loaded == cfg
    assert dataclasses.asdict(loaded) == dataclasses.asdict(cfg)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=abc", "train.epochs must be int, not 'abc'"),
        ("train.epochs=0", "train.epochs must be at least 1, not 0"),
        ("train.epochs=2.5", "train.epochs must be int, not 2.5"),
        ("data.batch_size=0", "data.batch_size must be at least 1"),
        ("model.dropout=1.5", "model.dropout must be in [0, 1)"),
        ("model.dropout=true", "model.dropout must be float, not True"),
        ("tokenizer.vocab_size=3", "tokenizer.vocab_size must be at least 16"),
        ("train.learning_rate=-1", "train.learning_rate must be in (0, 1]"),
        ("train.time_budget_minutes=0", "train.time_budget_minutes must be None or positive"),
        ("train.length_penalties=[]", "train.length_penalties must be one or more in [0, 10]"),
        ("model.variant=lstm_luong", "model.variant must be one of rnn, lstm, gru"),
        ("train.warmup_steps=-1", "train.warmup_steps must be 0 (none) or more"),
    ],
)
def test_values_of_the_wrong_type_or_out_of_range_are_refused(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_config("tiny", overrides=[override])


def test_an_int_is_a_float_where_a_float_is_asked():
    cfg = make_config("tiny", overrides=["train.learning_rate=1", "train.length_penalties=[0, 1]"])
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)
    assert cfg.train.length_penalties == (0.0, 1.0)


def test_unknown_pair_and_variant_are_refused_before_any_work():
    with pytest.raises(ConfigError, match="unknown language pair 'xx-yy'"):
        make_config("tiny", pair="xx-yy")
    with pytest.raises(ConfigError, match="model.variant must be one of"):
        make_config("tiny", variant="gur")


def test_a_config_json_from_before_corpora_loads_as_multi30k(tmp_path):
    cfg = make_config("tiny")
    old = to_dict(cfg)
    del old["corpus"]
    (tmp_path / layout.CONFIG).write_text(json.dumps(old))
    assert load_config(tmp_path / layout.CONFIG) == cfg and cfg.corpus == "multi30k"


def test_a_config_json_from_before_the_decoders_own_depth_is_as_deep_on_each_side(tmp_path):
    old = to_dict(make_config("converge", variant="transformer", overrides=["model.layers=6"]))
    del old["model"]["decoder_layers"]
    (tmp_path / layout.CONFIG).write_text(json.dumps(old))
    model = load_config(tmp_path / layout.CONFIG).model
    assert (model.layers, model.decoder_layers) == (6, 6)
    assert make_config("converge", variant="transformer", overrides=["model.decoder_layers=1"]).model == (
        dataclasses.replace(make_config("converge", variant="transformer").model, decoder_layers=1)
    )  # a setting of its own now


def test_another_corpus_takes_any_pair_of_two_languages():
    assert make_config("tiny", "pt-en", corpus="ted_hrlr_translate/pt_to_en").pair == "pt-en"
    with pytest.raises(ConfigError, match="two different languages"):
        make_config("tiny", "pt", corpus="ted_hrlr_translate/pt_to_en")
    with pytest.raises(ConfigError, match="unknown language pair 'pt-en'"):
        make_config("tiny", "pt-en")  # Multi30k has no Portuguese


def test_settings_that_do_not_go_together_are_refused():
    with pytest.raises(
        ConfigError, match=re.escape("model.embedding_dim (32) and model.heads (3) do not divide")
    ):
        make_config("tiny", variant="transformer", overrides=["model.heads=3"])
    with pytest.raises(ConfigError, match="set train.plateau_patience and train.decay_from to None"):
        make_config("converge", overrides=["train.warmup_steps=100"])  # the recipe halves on plateaus


def test_the_transformer_brings_its_schedule_to_every_preset():
    for preset in ("quick", "converge", "full"):
        train = make_config(preset, variant="transformer").train
        assert train.warmup_steps > 0 and train.plateau_patience is None and train.decay_from is None
        assert make_config(preset, variant="gru").train.warmup_steps == 0
    assert (
        make_config("converge", variant="transformer", overrides=["train.warmup_steps=10"]).train.warmup_steps
        == 10
    )
