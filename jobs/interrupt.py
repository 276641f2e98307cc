"""Ctrl-C (SIGINT) for `recon run` and `recon backfill`: once, start nothing new and let what
runs finish and publish; twice, abandon what runs (its Spark jobs are cancelled and nothing of it
is published). Either way the command exits 130.

SIGTERM (a scheduler's timeout, systemd) still ends the process at once, as the signal does by
default, but first removes the spools of the running replays: the API data fetched so far."""

from __future__ import annotations

import os
import signal
import threading

from jobs import console

INTERRUPTED = 130  # the shell's code for a run stopped by SIGINT


class Stop:
    """Ctrl-C state, shared by the signal handler and the threads that run the work. `unit` names
    what runs ("day" for a backfill, "dataset" for a run) in the messages."""

    def __init__(self, unit: str = "day") -> None:
        self.unit = unit
        self.stopping = threading.Event()
        self.abandon = threading.Event()
        self._spark = None

    def attach(self, spark) -> None:
        self._spark = spark

    def interrupt(self) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            console.info(f"interrupted: no new {self.unit} starts; what is running finishes. "
                         f"Ctrl-C again to abandon it")
            return
        if not self.abandon.is_set():
            self.abandon.set()
            console.info("interrupted again: abandoning what is running (nothing of it is published)")
            if self._spark is not None:
                # From another thread: the handler may run while the main thread is inside a py4j
                # call, and a second call on that thread's connection would be a reentrant one.
                threading.Thread(target=self._spark.sparkContext.cancelAllJobs, name="cancel-jobs",
                                 daemon=True).start()


def _terminate(signum, frame) -> None:
    from jobs.replay import remove_live_spools

    remove_live_spools()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


class handle_signals:
    """SIGINT -> stop.interrupt(), and SIGTERM -> remove the live spools and end, for the duration,
    when running in the main thread. `install()` takes SIGINT back after a SparkContext started in
    this thread put in its own handler (which raises KeyboardInterrupt in the middle of whatever
    runs)."""

    def __init__(self, stop: Stop):
        self.stop, self.previous, self.previous_term = stop, None, None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, lambda *_: self.stop.interrupt())
            term = signal.signal(signal.SIGTERM, _terminate)
            if self.previous is None:
                self.previous, self.previous_term = previous, term

    def __enter__(self):
        self.install()
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            signal.signal(signal.SIGTERM, self.previous_term)
