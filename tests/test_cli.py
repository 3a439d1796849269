import os
import subprocess
import sys
import time

from pipeline.corpus import PAIRS

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def pipeline_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=120,
    )


# Asks for a stage's help in a fresh interpreter, then tells whether TensorFlow got imported.
HELP_PROBE = """
import sys
from pipeline.__main__ import main
try:
    main(["train", "--help"])
except SystemExit:
    pass
print("tensorflow" in sys.modules)
"""


def test_help_exits_zero_quickly(tmp_path):
    start = time.monotonic()
    result = pipeline_cli("--help", cwd=tmp_path)
    assert time.monotonic() - start < 10  # importing TensorFlow alone takes seconds
    assert result.returncode == 0
    for stage in ("data", "tokenize", "train", "export", "evaluate", "translate"):
        assert stage in result.stdout


def test_help_does_not_load_tensorflow(tmp_path):
    result = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, env=ENV,
                            cwd=tmp_path, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--run-dir" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_missing_stage_is_a_usage_error(tmp_path):
    result = pipeline_cli(cwd=tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_unknown_pair_fails_with_a_clear_message(tmp_path):
    result = pipeline_cli("data", "--pair", "xx-yy", "--data-dir", str(tmp_path / "tfds"), cwd=tmp_path)
    assert result.returncode != 0
    assert "xx-yy" in result.stderr
    assert all(pair in result.stderr for pair in PAIRS)  # says what would have worked
    assert "Traceback" not in result.stderr
