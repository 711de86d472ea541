"""Running the CLI in-process for tests (pytest puts tests/ on sys.path)."""

from typer.testing import CliRunner

from cnnkit.cli import app


def cli(*args, ok: bool = True):
    """Invoke `cnnkit ARGS...`; with ok=True a non-zero exit fails the test with the output."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if ok and result.exit_code != 0:
        raise AssertionError(f"exit {result.exit_code}\n{result.output}") from result.exception
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback is never a user-facing answer
    return result
