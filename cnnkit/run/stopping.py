"""Ctrl-C (SIGINT) and SIGTERM (what Slurm, Kubernetes and `timeout` send) end a run the same way.

Outside fit() a signal raises `Stop` at once. Inside fit() it only sets a flag, which the first callback checks
after every batch (cnnkit.run.replay.epoch_start): the run stops within one step, and never in the middle of a
checkpoint write. Either way train() marks the run interrupted and says how to resume; the exit code is 128 + the
signal's number (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a process the signal ended.
"""

from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stop(KeyboardInterrupt):
    """A stop asked for by a signal. A KeyboardInterrupt, so every `except Exception` lets it through."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequest:
    def __init__(self):
        self.signum: int | None = None
        self.deferred = False  # True inside fit(): stop after the current batch

    def check(self) -> None:
        if self.signum is not None:
            raise Stop(self.signum)

    @contextlib.contextmanager
    def after_each_batch(self):
        self.deferred = True
        try:
            yield
        finally:
            self.deferred = False
        self.check()  # a signal noted during the block's last writes is answered now, not forgotten

    def quiet(self) -> None:
        """While the interrupted run's bookkeeping is written: further signals are noted, not raised."""
        self.deferred = True


@contextlib.contextmanager
def handled():
    """Install the handlers for the duration of a training run (main thread only; elsewhere a no-op)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        first = request.signum is None
        request.signum = request.signum or signum
        if first and not request.deferred:
            raise Stop(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield request
    finally:
        for s, old in previous.items():
            # Once stopped, the process is on its way out: more presses of Ctrl-C must not cut its exit short.
            signal.signal(s, signal.SIG_IGN if request.signum is not None else old)
