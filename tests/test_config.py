import dataclasses

import pytest

from pipeline.config import PRESETS, Config, load_config, make_config, save_config


def test_presets_exist_and_differ():
    assert {"tiny", "quick", "converge", "full"} <= set(PRESETS)
    tiny, quick, converge, full = (make_config(name) for name in ("tiny", "quick", "converge", "full"))
    assert tiny.preset == "tiny" and tiny.model.units < quick.model.units < full.model.units
    assert tiny.data.train_limit == 2000
    assert quick.train.time_budget_minutes is None  # epochs, not minutes
    # The comparison and the long run share one recipe; only the model's size differs.
    assert converge.train.label_smoothing == full.train.label_smoothing
    assert converge.model.dropout == full.model.dropout
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
    loaded = load_config(save_config(cfg, tmp_path / "run" / "config.json"))
    assert loaded == cfg
    assert dataclasses.asdict(loaded) == dataclasses.asdict(cfg)
