"""train.precision: the setting, the `auto` rule, and a mixed-precision run whose files are float32; the CPU kernels
(oneDNN) TensorFlow is imported with."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from clitools import cli

from cnnkit.errors import SpecError
from cnnkit.run import precision
from cnnkit.spec.parse import load_spec, load_spec_text

TINY = """\
name: tiny-bf16
input_shape: [8, 8, 1]
layers:
  - Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}
  - BatchNormalization
  - MaxPooling2D: {pool_size: 2}
  - Flatten
  - Dense: {units: 10, activation: softmax}
data: {dataset: digits}
train: {optimizer: {name: adam, learning_rate: 0.01}, epochs: 2, batch_size: 32, precision: mixed_bfloat16}
"""


def _train_cfg(text: str) -> dict:
    return load_spec_text(text).train


def test_precision_setting_parses_and_refuses_unknown_names():
    assert _train_cfg(TINY)["precision"] == "mixed_bfloat16"
    assert _train_cfg(TINY.replace(", precision: mixed_bfloat16", ""))["precision"] == "auto"
    with pytest.raises(SpecError) as refused:
        _train_cfg(TINY.replace("mixed_bfloat16", "half"))
    assert "precision" in str(refused.value) and "mixed_float16" in str(refused.value)


@pytest.mark.parametrize("old, new", [("true", "mixed_float16"), ("false", "float32")])
def test_the_0_1_mixed_precision_switch_still_reads(old, new):
    assert _train_cfg(TINY.replace("precision: mixed_bfloat16", f"mixed_precision: {old}"))["precision"] == new


class _NoGPU:
    class config:  # noqa: N801 - mimics tf.config
        @staticmethod
        def list_physical_devices(kind):
            return []


def _tf_with_gpu(capability):
    details = {"compute_capability": capability}
    gpu = SimpleNamespace(name="/physical_device:GPU:0")
    config = SimpleNamespace(
        list_physical_devices=lambda kind: [gpu],
        experimental=SimpleNamespace(get_device_details=lambda device: details),
    )
    return SimpleNamespace(config=config)


@pytest.mark.parametrize(
    "flags, policy",
    [
        ({"avx2", "fma", "amx_bf16", "amx_tile"}, "mixed_bfloat16"),
        ({"avx512f", "avx512_bf16"}, "float32"),  # bfloat16 dot products, but not measured faster yet
        ({"avx2", "fma"}, "float32"),
        (set(), "float32"),
    ],
)
def test_auto_on_a_cpu_takes_bfloat16_only_with_amx(flags, policy):
    chosen, why = precision.resolve(_NoGPU, "auto", "cpu", flags)
    assert chosen == policy and why.startswith("auto: CPU")


@pytest.mark.parametrize("capability, policy", [((8, 0), "mixed_float16"), ((6, 1), "float32")])
def test_auto_on_a_gpu_takes_float16_only_with_tensor_cores(capability, policy):
    assert precision.resolve(_tf_with_gpu(capability), "auto", "gpu")[0] == policy


def test_an_explicit_policy_is_taken_as_asked():
    assert precision.resolve(_NoGPU, "float32", "cpu", {"amx_bf16"}) == ("float32", "train.precision")
    assert precision.resolve(_NoGPU, "mixed_bfloat16", "cpu", set())[0] == "mixed_bfloat16"


def test_cpu_flags_reads_the_first_cpu(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert precision.cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_bf16"}
    assert precision.cpu_flags(tmp_path / "absent") == set()


@pytest.mark.slow
def test_a_bfloat16_run_trains_says_so_and_writes_float32_files(tmp_path):
    """Mixed precision computes in bfloat16 with float32 variables; the output layer and every model file stay
    float32, so `evaluate`, `predict` and `export` read the run alike on any machine."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    result = cli("train", spec, "--out", tmp_path / "runs", "--no-pictures")
    assert result.exit_code == 0, result.output
    assert "precision mixed_bfloat16 (train.precision); variables and model files stay float32" in result.output
    run = Path(result.output.split("Run folder: ")[1].split()[0])
    info = json.loads((run / "run.json").read_text())
    assert info["precision"] == {"requested": "mixed_bfloat16", "policy": "mixed_bfloat16", "why": "train.precision"}
    assert info["cpu_kernels"].startswith(("TF_ENABLE_ONEDNN_OPTS=", "TensorFlow's default"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.6  # 2 epochs on ~1,150 digits: it learned

    from cnnkit.run.modelfile import load_model

    for name in ("model.keras", "best.keras"):
        model = load_model(run / name)
        assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}, name

    # The network it trained: bfloat16 inside, the output layer float32.
    from cnnkit.run.build import build_model

    trained = build_model(load_spec_text(TINY), policy="mixed_bfloat16")
    assert [layer.dtype_policy.name for layer in trained.layers] == ["mixed_bfloat16"] * 4 + ["float32"]
    import keras

    assert keras.mixed_precision.global_policy().name == "float32"  # building left the global policy alone
    evaluated = cli("evaluate", run)
    assert evaluated.exit_code == 0, evaluated.output


@pytest.mark.slow  # trains four tiny runs
def test_speed_settings_change_no_result(tmp_path, deterministic_ops_restored):
    """steps_per_execution and validation_batch_size only change how the work is dispatched: a deterministic run
    ends with the same weights, and validation computes the same loss, whatever their values."""
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.replace(", precision: mixed_bfloat16", ", precision: float32, deterministic: true"))
    runs = {}
    for name, sets in {
        "reference": ["train.steps_per_execution=1", "train.validation_batch_size=32"],
        "fused": ["train.steps_per_execution=4", "train.validation_batch_size=32"],
        "big validation batches": ["train.steps_per_execution=1", "train.validation_batch_size=auto"],
    }.items():
        overrides = [arg for item in sets for arg in ("--set", item)]
        result = cli("train", spec, *overrides, "--out", tmp_path / name, "--no-pictures")
        assert result.exit_code == 0, result.output
        run = (tmp_path / name / "latest").resolve()
        runs[name] = (
            json.loads((run / "run.json").read_text())["weights_sha256"],
            json.loads((run / "history.json").read_text()),
        )
    reference_sha, reference_history = runs["reference"]
    assert runs["fused"][0] == reference_sha
    assert runs["big validation batches"][0] == reference_sha
    for name in ("fused", "big validation batches"):
        history = runs[name][1]
        assert history["val_loss"] == pytest.approx(reference_history["val_loss"], rel=1e-5), name


def test_validation_batch_auto_is_capped_by_the_widest_activation():
    from cnnkit.run.batching import ACTIVATION_BUDGET, MAX_INFERENCE_BATCH, inference_batch

    small = load_spec_text(TINY)
    assert inference_batch(small, 32) == MAX_INFERENCE_BATCH  # 8x8x8 floats: the cap, not the budget, decides
    wide = load_spec_text(
        TINY.replace("input_shape: [8, 8, 1]", "input_shape: [64, 64, 3]").replace("filters: 8", "filters: 64")
    )
    widest = 64 * 64 * 64 * 4  # bytes of the first Conv2D's output per image: 1 MiB
    assert inference_batch(wide, 8) == 16 == ACTIVATION_BUDGET // widest
    assert inference_batch(wide, 32) == 32  # never below the training batch, which fits already
    # The notes' MNIST net: 26x26x32 floats (86.5 KB) per image. 512 made TensorFlow's oneDNN allocator grow and keep
    # a 128 MiB pool (86 MB resident) that the training step at batch 64 never needed.
    assert inference_batch(load_spec(Path(__file__).parent.parent / "configs" / "mnist.yaml"), 64) == 128
    chosen = TINY.replace("precision: mixed_bfloat16", "precision: float32, validation_batch_size: 100")
    assert inference_batch(load_spec_text(chosen), 32) == 100


@pytest.mark.parametrize(
    ("environ", "machine", "value", "why"),
    [
        ({}, "x86_64", "1", "TF_ENABLE_ONEDNN_OPTS=1 (cnnkit's default on x86-64)"),
        ({}, "AMD64", "1", "TF_ENABLE_ONEDNN_OPTS=1 (cnnkit's default on x86-64)"),
        ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "x86_64", "0", "TF_ENABLE_ONEDNN_OPTS=0 (set outside cnnkit)"),
        ({}, "aarch64", None, "TensorFlow's default (not an x86-64 CPU)"),
    ],
)
def test_onednn_kernels_are_on_for_x86_64_unless_the_user_says_otherwise(environ, machine, value, why):
    from cnnkit.backend import choose_cpu_kernels

    assert choose_cpu_kernels(environ, machine) == why
    assert environ.get("TF_ENABLE_ONEDNN_OPTS") == value


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="oneDNN is cnnkit's default on x86-64 only"
)
def test_tensorflow_imported_through_cnnkit_runs_onednn_kernels():
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    probe = (
        "from cnnkit.backend import cpu_kernels, tensorflow; tensorflow()\n"
        "from tensorflow.python.util import _pywrap_util_port\n"
        "print(_pywrap_util_port.IsMklEnabled(), cpu_kernels())"
    )
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True TF_ENABLE_ONEDNN_OPTS=1 (cnnkit's default on x86-64)"


def test_tensorflow_imported_through_cnnkit_skips_scikit_learn_and_leaves_it_importable():
    """Keras imports scikit-learn (~1 s) only for wrappers cnnkit never uses: backend.tensorflow() keeps it out of
    the import, and `import sklearn` works again right after (the digits dataset needs it)."""
    probe = (
        "import sys\nfrom cnnkit.backend import tensorflow; tensorflow()\n"
        "print('sklearn' in sys.modules)\n"
        "from sklearn.datasets import load_digits; print(len(load_digits().images))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "1797"]


def test_not_importable_leaves_modules_already_imported_alone():
    from cnnkit import backend

    already = sys.modules["json"]
    with backend._not_importable(("json", "cnnkit_no_such_module_yet")):
        assert sys.modules["json"] is already
        with pytest.raises(ImportError):
            import cnnkit_no_such_module_yet  # noqa: F401
    assert "cnnkit_no_such_module_yet" not in sys.modules
