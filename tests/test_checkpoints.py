"""Epoch checkpoints in process, on a model of a few weights: seconds, for `make mutate` too."""

import json
import re
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from pipeline.constants import VARIANT_NAMES
from pipeline.training import checkpoints
from pipeline.training.checkpoints import CheckpointError

STATE = {"epoch": 2, "callbacks": {"selection": {"best": 12.5}}}


def small_model(seed: int = 0) -> keras.Model:
    """Dense layers around a named dropout, compiled with Adam: weights, optimizer and a random stream."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((3,)), keras.layers.Dense(4, name="hidden"), keras.layers.Dropout(0.5, name="drop"),
              keras.layers.Dense(2, name="out")]  # fmt: skip
    model = keras.Sequential(layers, name="small")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def trained(steps: int, seed: int = 0) -> keras.Model:
    """A model after ``steps`` training steps: moments, step count and dropout stream all moved on."""
    model = small_model(seed)
    x = np.arange(24, dtype="float32").reshape(8, 3) / 24
    y = np.ones((8, 2), "float32")
    model.fit(x, y, batch_size=4, epochs=steps // 2, verbose=0, shuffle=False)
    return model


def values(variables: dict) -> dict[str, np.ndarray]:
    return {path: np.array(v.numpy()) for path, v in variables.items()}


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_every_variant_keys_its_variables_alike_in_every_build(variant):
    # A resumed process builds the model anew: every key must name the same variable there.
    from pipeline.config import make_config
    from pipeline.models import build_model
    from pipeline.training.train import compile_model

    cfg = make_config("tiny", variant=variant, overrides=["model.dropout=0.3"])
    keys = []
    for _ in range(2):
        model = compile_model(build_model(cfg.model, 40), cfg)
        model.optimizer.build(model.trainable_variables)
        keys.append(list(checkpoints.resumable_variables(model)))
    assert keys[0] == keys[1]
    assert len([k for k in keys[0] if k.startswith("random/")]) >= 3  # every dropout layer's stream


def test_each_random_stream_is_found_once_under_the_layers_that_hold_it():
    from pipeline.config import make_config
    from pipeline.models import build_model

    model = build_model(
        make_config("tiny", variant="gru_bahdanau", overrides=["model.dropout=0.3"]).model, 40
    )
    assert list(checkpoints.random_states(model)) == [
        f"gru_bahdanau/{layer}/seed_generator_0"
        for layer in ("encoder/embedding_dropout", "encoder/birnn/forward_gru/gru_cell",
                      "encoder/birnn/backward_gru/gru_cell", "decoder/embedding_dropout", "decoder/cell",
                      "decoder/readout_dropout")
    ]  # fmt: skip


def test_two_optimizer_variables_with_one_path_are_refused(monkeypatch):
    class Variable:
        def __init__(self, path: str):
            self.path = path

    # Two optimizers' variables, the same once the optimizer's own name is left out.
    model = SimpleNamespace(optimizer=SimpleNamespace(variables=[Variable("adam/m"), Variable("adam_1/m")]))
    monkeypatch.setattr(checkpoints, "random_states", lambda model: {})
    with pytest.raises(CheckpointError, match="share a path"):
        checkpoints.resumable_variables(model)


def test_a_restored_model_has_the_saved_weights_optimizer_and_random_streams(tmp_path):
    saved = trained(steps=4)
    checkpoints.save(tmp_path, 2, saved, STATE)
    fresh = small_model(seed=1)  # other initial weights
    assert checkpoints.restore(tmp_path, fresh) == STATE
    for a, b in zip(saved.weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert_same(
        values(checkpoints.resumable_variables(saved)), values(checkpoints.resumable_variables(fresh))
    )
    assert int(fresh.optimizer.iterations.numpy()) == 4
    # The random stream has moved on in training, and goes on from there.
    (stream,) = checkpoints.random_states(fresh).values()
    assert not np.array_equal(stream.numpy(), checkpoints.random_states(small_model()).popitem()[1].numpy())


def test_the_variables_are_keyed_by_path_the_same_in_every_model_built(tmp_path):
    first, second = checkpoints.resumable_variables(trained(2)), checkpoints.resumable_variables(trained(2))
    assert list(first) == list(second)  # Keras numbers its optimizers per process; the keys do not
    assert "optimizer/iteration" in first and "optimizer/learning_rate" in first
    assert "random/small/drop/seed_generator_0" in first
    assert any(key.endswith("_momentum") for key in first) and any(key.endswith("_velocity") for key in first)


def test_the_optimizer_is_restored_by_path_not_by_position(tmp_path):
    saved = trained(steps=4)
    checkpoints.save(tmp_path, 1, saved, STATE)
    path = checkpoints.epoch_dir(tmp_path, 1) / checkpoints.OPTIMIZER
    with np.load(path) as f:
        arrays = {key: f[key] for key in f.files}
    np.savez(path, **dict(reversed(list(arrays.items()))))  # the same arrays in the other order
    fresh = small_model()
    checkpoints.restore(tmp_path, fresh)
    assert_same(values(checkpoints.resumable_variables(fresh)), arrays)


def test_a_checkpoint_of_another_model_is_refused_by_name(tmp_path):
    checkpoints.save(tmp_path, 1, trained(2), STATE)
    path = checkpoints.epoch_dir(tmp_path, 1) / checkpoints.OPTIMIZER
    with np.load(path) as f:
        arrays = {key: f[key] for key in f.files}
    gone = sorted(arrays)[:4]  # four missing, four unknown: the message names the first three of each
    kept = {key: value for key, value in arrays.items() if key not in gone}
    np.savez(path, **kept, **{f"optimizer/other{i}": np.zeros(1) for i in range(4)})
    missing, unknown = gone[:3], [f"optimizer/other{i}" for i in range(3)]
    with pytest.raises(CheckpointError, match=re.escape(f"missing {missing}, unknown {unknown}")):
        checkpoints.restore(tmp_path, small_model())


def test_the_newest_checkpoint_is_restored_and_a_killed_write_removed(tmp_path):
    checkpoints.save(tmp_path, 1, trained(2), {"epoch": 1})
    checkpoints.save(tmp_path, 3, trained(4), {"epoch": 3})
    (tmp_path / ".epoch-004.killed").mkdir()  # what a kill during replace_dir leaves
    (tmp_path / "epoch-4").mkdir()  # not a checkpoint's name
    assert checkpoints.epochs(tmp_path) == [1, 3]
    reader = small_model()
    assert checkpoints.restore(tmp_path, reader, tidy=False) == {"epoch": 3}
    assert (tmp_path / ".epoch-004.killed").exists()  # a worker that only reads leaves it
    assert checkpoints.restore(tmp_path, small_model()) == {"epoch": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-001", "epoch-003", "epoch-4"]
    assert int(reader.optimizer.iterations.numpy()) == 4


def test_no_checkpoint_restores_nothing_but_builds_the_optimizer(tmp_path):
    model = small_model()
    assert checkpoints.restore(tmp_path / "new" / "checkpoints", model) == {}
    assert (tmp_path / "new" / "checkpoints").is_dir() and model.optimizer.built
    assert checkpoints.restore(tmp_path / "absent", small_model(), tidy=False) == {}


def test_a_checkpoint_holds_its_state_as_json(tmp_path):
    folder = checkpoints.save(tmp_path, 7, trained(2), STATE)
    assert folder == tmp_path / "epoch-007"
    assert json.loads((folder / checkpoints.STATE).read_text()) == STATE
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [checkpoints.WEIGHTS, checkpoints.OPTIMIZER, checkpoints.STATE]
    )


def test_prune_keeps_the_chosen_and_the_newest_and_only_the_newest_optimizer(tmp_path):
    model = trained(2)
    for epoch in (1, 2, 3, 4):
        checkpoints.save(tmp_path, epoch, model, {"epoch": epoch})
    checkpoints.prune(tmp_path, {2})
    checkpoints.prune(tmp_path, {2})  # again, as a resumed run does: nothing left to remove
    assert checkpoints.epochs(tmp_path) == [2, 4]
    assert not (checkpoints.epoch_dir(tmp_path, 2) / checkpoints.OPTIMIZER).exists()
    assert (checkpoints.epoch_dir(tmp_path, 2) / checkpoints.WEIGHTS).exists()
    assert (checkpoints.epoch_dir(tmp_path, 4) / checkpoints.OPTIMIZER).exists()
    checkpoints.prune(tmp_path, set())
    assert checkpoints.epochs(tmp_path) == [4]


def test_average_is_the_mean_of_the_chosen_epochs_weights(tmp_path):
    models = {1: trained(2), 2: trained(4), 3: trained(6)}
    for epoch, model in models.items():
        checkpoints.save(tmp_path, epoch, model, {"epoch": epoch})
    target = small_model()
    target.optimizer.build(target.trainable_variables)  # as in training: the files hold its variables
    checkpoints.average(tmp_path, [1, 3], target)
    for i, variable in enumerate(target.weights):
        expected = (models[1].weights[i].numpy() + models[3].weights[i].numpy()) / 2
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6)
    checkpoints.load_weights(tmp_path, 2, target)
    for a, b in zip(target.weights, models[2].weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
