"""Shell completion: `cnnkit --install-completion` exists, and Tab offers spec files where a command takes a spec
and run folders (plus model files) where it takes a run. Driven as bash drives it (COMP_WORDS / COMP_CWORD)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnnkit.cli import app


def complete(words: str) -> list[str]:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {"_CNNKIT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = CliRunner().invoke(app, [], env=env, prog_name="cnnkit")
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if line]


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    for run in ("runs/mnist-1", "runs/digits-2"):
        (tmp_path / run).mkdir(parents=True)
        (tmp_path / run / "spec.yaml").write_text("name: x\n")
    (tmp_path / "runs" / "latest").symlink_to("digits-2")
    (tmp_path / "runs" / "notes").mkdir()  # not a run, holds none
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mnist.yaml").write_text("")
    (tmp_path / "configs" / "README.txt").write_text("")
    (tmp_path / "model.tflite").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_install_completion_is_offered():
    result = CliRunner().invoke(app, ["--help"])
    assert "--install-completion" in result.output and "--show-completion" in result.output


def test_spec_arguments_complete_yaml_files_and_folders(tree):
    assert complete("cnnkit summary configs/") == ["configs/mnist.yaml"]
    assert "configs/" in complete("cnnkit train c")
    assert complete("cnnkit validate configs/m") == ["configs/mnist.yaml"]


def test_run_arguments_complete_run_folders(tree):
    assert complete("cnnkit compare ") == ["runs/"]
    assert complete("cnnkit compare runs/") == ["runs/digits-2", "runs/latest", "runs/mnist-1"]
    assert complete("cnnkit export runs/m") == ["runs/mnist-1"]
    assert complete("cnnkit train --resume runs/d") == ["runs/digits-2"]


def test_model_arguments_also_complete_exported_files(tree):
    assert complete("cnnkit predict ") == ["model.tflite", "runs/"]
    assert complete("cnnkit evaluate runs/l") == ["runs/latest"]
