"""Every command the README shows runs (train commands on the offline digits data)."""

import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnnkit.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ cnnkit "):
                commands.append(line[2:].split("  #")[0].strip())
    return commands


def test_readme_quick_start_is_make_demo_and_make_test():
    quick = README.split("## Quick start")[1].split("##")[0]
    assert re.findall(r"^\$ (make \w+)", quick, flags=re.M) == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow  # trains
def test_make_demo_runs_the_cli(tmp_path, monkeypatch):
    """What `make demo` runs, in order (the Makefile's own lines)."""
    makefile = (ROOT / "Makefile").read_text()
    demo = makefile.split("\ndemo:")[1].split("\n\n")[0]
    lines = [ln.strip().replace("$(BIN)/", "") for ln in demo.splitlines()[1:] if ln.strip()]
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


def test_every_make_target_the_readme_names_exists():
    """`make bench`, `make fuzz`, `make pictures`... run for real elsewhere (bench/, test_fuzz.py, the README's
    pictures); here every target the README names must at least resolve (`make -n`)."""
    import subprocess

    targets = sorted(set(re.findall(r"`make (\w+)`", README)) | {"demo", "test"})
    assert {"bench", "fuzz", "pictures", "install"} <= set(targets)
    for target in targets:
        proc = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, (target, proc.stderr)
