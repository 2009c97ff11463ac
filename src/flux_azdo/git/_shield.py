"""Work that an interrupt must not cut in half, done on a helper thread while the main thread waits.

Python runs signal handlers, and so raises KeyboardInterrupt or the CLI's SIGTERM/SIGHUP exception, on the main
thread only, between any two of its steps; another thread runs to the end. Two things here must not stop half-way:
starting git and learning its process (interrupted inside `subprocess.Popen` after the fork, git runs on and
nobody knows its pid), and removing a folder (`shutil.rmtree` interrupted between closing a descriptor and noting
it closes it again, and stops). The helper thread is started with `_thread` rather than `threading`, whose
`Thread.start()` waits on a `threading.Event`, and an interrupt at the wrong step of that wait breaks the
condition's lock (RuntimeError "release unlocked lock" instead of the KeyboardInterrupt); the main thread waits on
a plain lock, which an interrupt leaves either taken or not.
"""

from __future__ import annotations

import _thread
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
#: `run_to_the_end` starts the work again when an interrupt came before the helper thread took it up; one
#: interrupt needs two attempts.
_ATTEMPTS = 3


class Job(Generic[T]):
    """`work()` on a helper thread: `start()`, then `wait()`; after an exception anywhere, `cancel()`."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._work = work
        self._state = _thread.allocate_lock()  # guards began / cancelled
        self._finished = _thread.allocate_lock()  # held until the work is done
        self._finished.acquire()
        self._began = False
        self._cancelled = False
        self._done = False
        self.result: T | None = None  # what work() returned, once done: the caller's way back to it after an exception
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._done

    def start(self) -> None:
        _thread.start_new_thread(self._run, ())

    def _run(self) -> None:
        try:
            with self._state:
                if self._cancelled:
                    return
                self._began = True
            self.result = self._work()
        except BaseException as error:
            self.error = error
        finally:
            self._done = True
            self._finished.release()

    def wait(self) -> T:
        """The work's result, or what it raised. An interrupt while waiting goes on at once (then `cancel()`)."""
        if not self._done:
            self._finished.acquire()
        error, self.error = self.error, None
        if error is not None:
            try:
                raise error
            finally:
                error = None  # no reference cycle through this frame
        return self.result  # type: ignore[return-value]

    def cancel(self) -> None:
        """The work never starts, or is done when this returns: an interrupt meanwhile goes on after that."""
        with self._state:
            self._cancelled = True
            began = self._began
        if began:
            self._finish()

    def _finish(self) -> None:
        interrupted: BaseException | None = None
        while not self._done:
            try:
                self._finished.acquire()
            except BaseException as exc:  # another interrupt: the work is still running, so wait on
                interrupted = interrupted or exc
        if interrupted is not None:
            try:
                raise interrupted
            finally:
                interrupted = None


def run_to_the_end(work: Callable[[], None]) -> None:
    """`work()`, which must be safe to run again, without being cut short: an exception that arrives meanwhile
    (or that `work` raises) goes on once it is done."""
    interrupted: BaseException | None = None
    for _ in range(_ATTEMPTS):
        job = Job(work)
        try:
            job.start()
            job.wait()
        except BaseException as exc:
            interrupted = interrupted or exc
            with contextlib.suppress(BaseException):  # one exception is enough to pass on
                job.cancel()
        if job.done:
            break
        # Interrupted before the helper thread took the work up: it never will, so again.
    if interrupted is not None:
        try:
            raise interrupted
        finally:
            interrupted = None
