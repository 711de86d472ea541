"""Every command the README shows runs (train commands on the offline digits data)."""

import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from cnnkit.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
QUICK_START = README.split("## Quick start")[1].split("\n## ")[0]


def readme_commands() -> list[str]:
    """Every `$ cnnkit ...` line outside the quick start (which test_quick_start_walked_on_a_fresh_clone walks)."""
    commands = []
    for block in re.findall(r"```console\n(.*?)```", README.replace(QUICK_START, ""), flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ cnnkit "):
                commands.append(line[2:].split("  #")[0].strip())
    return commands


def quick_start_commands() -> list[str]:
    block = re.findall(r"```console\n(.*?)```", QUICK_START, flags=re.S)[0]
    return [line[2:].split("  #")[0].strip() for line in block.splitlines() if line.startswith("$ ")]


def demo_recipe() -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    demo = makefile.split("\ndemo:")[1].split("\n\n")[0]
    return [ln.strip().replace("$(BIN)/", "") for ln in demo.splitlines()[1:] if ln.strip()]


def test_readme_quick_start_is_make_demo_and_make_test():
    assert re.findall(r"^\$ (make \w+)", QUICK_START, flags=re.M) == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_quick_start_says_how_to_reach_cnnkit_and_make_demo_agrees():
    """A newcomer types `cnnkit` after `make demo`: the quick start activates .venv first, and `make demo`
    leaves its run where every README command looks (runs/latest) and ends by naming the next command."""
    commands = quick_start_commands()
    assert commands.index("source .venv/bin/activate") == commands.index("make demo") + 1
    assert ".venv/bin/cnnkit" in QUICK_START
    recipe = demo_recipe()
    assert recipe[:2] == ["cnnkit train configs/digits.yaml", "cnnkit evaluate runs/latest"]
    (echo,) = [line for line in recipe if line.startswith("@echo")]
    next_command = echo.split("then: ")[1].rstrip('"')
    assert next_command in commands and next_command in readme_commands()  # and in the Commands list
    assert "runs/demo" not in README and "runs/demo" not in (ROOT / "Makefile").read_text()


@pytest.mark.slow
def test_quick_start_walked_on_a_fresh_clone(tmp_path):
    """The quick start exactly as written, through bash, in a fresh `git clone` of this repository.

    Two liberties, both about not installing: (1) the clone's `.venv` is a symlink to this checkout's
    environment instead of a new one (creating a venv and installing TensorFlow takes many minutes and the
    network); (2) make runs with `-o .venv/.installed-stamp`, which tells it the install step is done, and with
    `PY=false`, so that if make ever tried to install anyway it would fail at once instead of re-pointing the
    shared environment's editable install at the clone. PYTHONPATH makes that environment run the clone's
    code. `make test` is this very suite, so it is not started again from inside it. Everything else --
    `make demo`'s training and evaluation, the activation line, the next command -- runs as a user types it.
    """
    import os
    import subprocess

    venv = ROOT / ".venv"
    if not (venv / "bin" / "cnnkit").exists():
        pytest.skip(f"no environment at {venv} to share with the clone (run `make install` first)")
    clone = tmp_path / "cnnkit"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(venv.resolve(), target_is_directory=True)
    commands = [c for c in quick_start_commands() if c != "make test"]
    assert commands[0] == "make demo" and len(commands) == 3
    script = "set -euo pipefail\n" + "\n".join(
        c.replace("make ", "make PY=false -o .venv/.installed-stamp ", 1) if c.startswith("make ") else c
        for c in commands
    )
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PYTHONPATH=str(clone), COLUMNS="80", PATH="/usr/local/bin:/usr/bin:/bin")
    proc = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "pip install" not in out and "-m venv" not in out  # nothing was installed
    assert "Run folder: runs/digits-" in out and "test samples" in out
    accuracy = float(re.search(r"^loss [0-9.]+  accuracy ([0-9.]+)$", out, flags=re.M).group(1))
    assert accuracy >= 0.95  # the README's promise for the demo
    assert "Next: source .venv/bin/activate, then: cnnkit plot feature-maps runs/latest --index 3" in out
    assert out.rstrip().endswith("wrote runs/latest/plots/feature_maps.png")
    assert (clone / "runs" / "latest" / "plots" / "feature_maps.png").is_file()


@pytest.mark.slow  # trains
def test_make_demo_runs_the_cli(tmp_path, monkeypatch):
    """What `make demo` runs, in order (the Makefile's own lines)."""
    lines = [line for line in demo_recipe() if not line.startswith("@echo")]
    assert lines and all(ln.startswith("cnnkit ") for ln in lines)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for line in lines:
        args = shlex.split(line)[1:]
        if args[0] == "train":
            args += ["--epochs", "3"]  # the demo's full 30 epochs are `make demo`'s job, not the suite's
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (line, result.output)


# What each README command must print (a command's first words -> a check on its stdout). Every README command
# needs an entry: a new one without a check fails test_every_readme_command_has_a_key_output.
KEY_OUTPUT = {
    "cnnkit summary configs/fashion_resnet.yaml": lambda out: "Residual" in out and "Total params:" in out,
    "cnnkit summary configs/mnist.yaml --json": lambda out: json.loads(out)["total_params"] == 121930,
    "cnnkit summary configs/mnist.yaml --keras": lambda out: "Keras agrees" in out,
    "cnnkit summary": lambda out: "Total params: 121,930" in out,
    "cnnkit validate": lambda out: out == "ok  configs/mnist.yaml\nok  configs/lenet5.yaml\n",
    "cnnkit layers": lambda out: "Conv2D" in out and "MaxPooling2D" in out,
    "cnnkit datasets": lambda out: "image_folder" in out and "label_column" in out,
    "cnnkit time": lambda out: "Forward ms" in out and "\nwhole step " in out and " images/s" in out,
    "cnnkit train": lambda out: "Run folder: runs/digits-" in out and "test   loss" in out,
    "cnnkit evaluate runs/latest --json": lambda out: {"accuracy", "confusion_matrix"} <= set(json.loads(out)),
    "cnnkit evaluate": lambda out: "test samples" in out and "Per-class scores" in out,
    "cnnkit evaluate runs/latest --test-time-flip": lambda out: (
        "test-time flip horizontal" in out and "the images alone: accuracy 0." in out
    ),
    "cnnkit predict": lambda out: out.startswith("docs/img/digit8.png: "),
    "cnnkit plot gradcam": lambda out: out == "wrote runs/latest/plots/gradcam.png\n",
    "cnnkit plot gradcam runs/latest docs/img/digit8.png --method saliency": lambda out: (
        out == "wrote runs/latest/plots/saliency.png\n"
    ),
    "cnnkit report": lambda out: out == "wrote runs/latest/report.html\n",
    "cnnkit export": lambda out: "parity" in out.lower() and "export.json" in out,
    "cnnkit compare": lambda out: out.rstrip().endswith("wrote compare.png"),
    "cnnkit plot curves": lambda out: out == "wrote runs/latest/plots/curves.png\n",
    "cnnkit plot filters": lambda out: out == "wrote runs/latest/plots/filters.png\n",
    "cnnkit plot feature-maps": lambda out: out == "wrote runs/latest/plots/feature_maps.png\n",
    "cnnkit plot architecture": lambda out: out == "wrote plots/mnist-architecture.png\n",
    "cnnkit plot kernels --list": lambda out: out.startswith("identity ") and "\nsobel_x " in out,
    "cnnkit plot kernels": lambda out: out == "wrote plots/digit-kernels.png\n",
}


def key_output(command: str):
    """The check for `command`: the entry with the longest matching prefix."""
    matches = [prefix for prefix in KEY_OUTPUT if command.startswith(prefix)]
    return KEY_OUTPUT[max(matches, key=len)] if matches else None


def test_every_readme_command_has_a_key_output():
    assert [c for c in readme_commands() if key_output(c) is None] == []


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path, monkeypatch):
    commands = readme_commands()
    assert len(commands) >= 10
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for command in commands:
        args = shlex.split(command)[1:]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (command, result.output, result.stderr)
        assert key_output(command)(result.stdout), (command, result.stdout)
    # The pictures went where the README says, and nothing was left in the folder the commands ran in.
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["digit-kernels.png", "mnist-architecture.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.png", "configs", "docs", "plots", "runs"]


def readme_data_lines() -> list[str]:
    """The `data:` lines of the README's "your own data" examples."""
    block = README.split("Your own data")[1].split("```yaml\n")[1].split("```")[0]
    return [line for line in block.splitlines() if line.startswith("data:")]


def _write_own_data(folder: Path, rng) -> None:
    """Tiny data in the three layouts the README's examples name: 3 classes of 8×8 grey images."""
    from PIL import Image

    images = rng.integers(0, 256, (60, 8, 8), dtype=np.uint8)
    labels = np.arange(60) % 3
    for split, rows in (("train", range(0, 45)), ("test", range(45, 60))):
        for i in rows:
            path = folder / "shapes" / split / f"class_{labels[i]}" / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(path)
    csv_rows = ["label," + ",".join(f"pixel{j}" for j in range(64))]
    csv_rows += [f"{labels[i]}," + ",".join(map(str, images[i].reshape(-1))) for i in range(60)]
    (folder / "digits.csv").write_text("\n".join(csv_rows) + "\n")
    np.savez(folder / "digits.npz", x_train=images[..., None], y_train=labels)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["image_folder", "csv", "npz"])
def test_readme_own_data_examples_train(dataset, tmp_path, monkeypatch):
    (line,) = [line for line in readme_data_lines() if f"dataset: {dataset}," in line]
    data = yaml.safe_load(line)["data"]
    _write_own_data(tmp_path, np.random.default_rng(0))
    spec = {
        "name": f"own-{dataset}",
        "input_shape": [8, 8, 1],
        "layers": [
            {"Conv2D": {"filters": 4, "kernel_size": 3}},
            "Flatten",
            {"Dense": {"units": 3, "activation": "softmax"}},
        ],
        "data": data,
        "train": {"epochs": 1, "batch_size": 16},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", "spec.yaml", "--no-pictures"])
    assert result.exit_code == 0, result.output
    assert f"Run folder: runs/own-{dataset}-" in result.stdout
    metrics = json.loads(next((tmp_path / "runs").glob(f"own-{dataset}-*/metrics.json")).read_text())
    assert metrics["test"]["accuracy"] >= 0.0 and metrics["train"]  # trained, and tested on a held-out split


def test_every_make_target_the_readme_names_exists():
    """`make bench`, `make fuzz`, `make pictures`... run for real elsewhere (bench/, test_fuzz.py, the README's
    pictures); here every target the README names must at least resolve (`make -n`)."""
    import subprocess

    targets = sorted(set(re.findall(r"`make (\w+)`", README)) | {"demo", "test"})
    assert {"bench", "fuzz", "pictures", "install"} <= set(targets)
    for target in targets:
        proc = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, (target, proc.stderr)
