"""The house rules of the code: imports go one way (pyproject.toml's import-linter contracts), spec/ and the
light commands never reach TensorFlow, and each fact about a layer or dataset lives in one registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300, env=_env(cwd)
    )


def _env(root: Path) -> dict:
    import os

    return {**os.environ, "PYTHONPATH": str(root)}


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e '.[dev]')")
def test_import_contracts_are_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e '.[dev]')")
def test_contract_fails_when_spec_imports_tensorflow(tmp_path):
    """The contract has teeth: a copy of the package whose spec/ imports TensorFlow breaks it."""
    import shutil

    shutil.copytree(ROOT / "cnnkit", tmp_path / "cnnkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shapes = tmp_path / "cnnkit" / "spec" / "shapes.py"
    shapes.write_text(shapes.read_text().replace("import math\n", "import math\n\nimport tensorflow  # noqa\n", 1))
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "cnnkit.spec.shapes -> tensorflow" in result.stdout


def test_summary_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cnnkit.cli import app\n"
        "result = CliRunner().invoke(app, ['summary', 'configs/mnist.yaml'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=_env(ROOT)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_layer_family_has_a_colour_and_the_input_its_own():
    from cnnkit.spec.layers import FAMILIES, LAYERS
    from cnnkit.viz import architecture

    assert {entry.family for entry in LAYERS.values()} <= set(FAMILIES)
    assert set(FAMILIES) <= set(architecture._COLOURS)
    assert architecture._family({"type": "Input", "family": "input"}) == ("input", architecture._COLOURS["input"])
    assert architecture._COLOURS["input"] != architecture._COLOURS["reshape"]
    assert architecture._family({"type": "Conv2DTranspose"})[0] == "transposed convolution"
    assert architecture._family({"type": "SomethingNew"})[0] == "other"


@pytest.mark.slow  # builds a Keras layer of every conv type
def test_every_layer_with_kernels_names_a_keras_weight():
    """probe.py shows the weight the registry names: each conv entry's `kernel` is a real attribute (Keras 3
    calls a DepthwiseConv's weight `kernel`, a SeparableConv's `depthwise_kernel`)."""
    from cnnkit.backend import keras as _keras
    from cnnkit.spec.layers import LAYERS

    keras = _keras()
    for name, entry in LAYERS.items():
        if entry.kernel is None:
            continue
        rank = int(name[-2]) if name[-1] == "D" else int(name.split("D")[0][-1])
        layer = getattr(keras.layers, name)(**({} if name.startswith("Depthwise") else {"filters": 2}), kernel_size=1)
        layer.build((None, *(4,) * rank, 3))
        assert getattr(layer, entry.kernel).shape[-2 if not entry.kernel_out_in else -1] == 3, name


def test_version_has_one_source():
    """pyproject.toml reads the version from cnnkit.__version__; `cnnkit --version` prints that same string."""
    import tomllib

    from typer.testing import CliRunner

    from cnnkit import __version__
    from cnnkit.cli import app

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cnnkit.__version__"}
    assert CliRunner().invoke(app, ["--version"]).stdout == f"cnnkit {__version__}\n"
