"""The bootstrap events (`flux_azdo.bootstrap.Reporter`) as an Azure Pipelines task shows them.

The lines read as the terminal's (`console.TerminalReporter`: symbol, space, message), and the agent gets what it
understands on top: each `action()` starts a collapsible `##[group]` (the agent keeps one open group, so the open
one is closed first) and moves the step's progress (`task.setprogress`, monotonic, below 100 until `complete`);
warnings and failures become issues on the run (`task.logissue`), which the agent itself prints as a
`##[warning]`/`##[error]` line that links to the issue (`ExecutionContext.AddIssue`), so they are not printed a
second time. Every line is masked (`Masker.mask`) and neutralised (`commands.neutralise`) before it is written:
messages carry text from git servers, the cluster and the user. A failure closes the open group first, so its
error line is not folded away inside a collapsed step. A secret the masker could not register (too short) is
said as a warning before the next line. A `rewrite` given to the reporter changes the words of every message
first (the task passes `inputs.in_input_terms`: the shared code names the CLI's flags, the task its inputs).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TextIO

from flux_azdo.pipeline.commands import command, endgroup, neutralise, one_line
from flux_azdo.pipeline.masking import Masker
from flux_azdo.pipeline.summary import escaped_forms

Result = Literal["Succeeded", "SucceededWithIssues", "Failed"]
RESULTS: tuple[Result, ...] = ("Succeeded", "SucceededWithIssues", "Failed")
#: Progress never reaches 100 before `complete()`: the step is not done while the waits run.
MAX_RUNNING_PROGRESS = 99
#: `action()` calls of a first bootstrap (checks, clone, components, push, install, secret (3), sync, push, apply,
#: health): a good `total_steps`; a re-run makes fewer, and more than this only keeps the bar at 99.
BOOTSTRAP_ACTIONS = 12
_VARIABLE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class PipelineReporter:
    """Implements `flux_azdo.bootstrap.Reporter` on the task's standard output (`stream`).

    `total_steps`: how many `action()` calls a full run makes, for the progress bar (more are fine: it stays
    below 100). `warnings` and `errors` keep the (masked) messages, for the summary and the task result.
    `rewrite` turns the shared code's words into the task's, in warnings, failures, details and successes; it
    runs before masking and neutralising, so nothing it produces escapes them.
    """

    def __init__(
        self,
        stream: TextIO,
        masker: Masker,
        *,
        total_steps: int,
        rewrite: Callable[[str], str] | None = None,
    ) -> None:
        self.stream = stream
        self.masker = masker
        self.rewrite: Callable[[str], str] = rewrite or _unchanged
        self.total_steps = max(1, total_steps)
        self.warnings: list[str] = []
        self.errors: list[str] = []
        self._steps = 0
        self._progress = -1
        self._group_open = False
        self._lock = threading.RLock()

    # -- output -------------------------------------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        """Masked, neutralised, and masked again (dropping hidden characters can reveal a registered form)."""
        return self.masker.mask(neutralise(self.masker.mask(text)))

    def _clean_line(self, text: str) -> str:
        return self.masker.mask(one_line(self.masker.mask(text)))

    def _write(self, *lines: str) -> None:
        with self._lock:
            for warning in self.masker.take_warnings():  # about a secret, by name: before anything else is said
                text = self._clean_line(warning)
                self.warnings.append(text)
                self.stream.write(command("task.logissue", text, type="warning") + "\n")
            for line in lines:
                self.stream.write(line + "\n")
            self.stream.flush()

    def _symbol_line(self, symbol: str, message: str) -> None:
        lines = self._clean(message).split("\n")
        self._write(f"{symbol} {lines[0]}", *(f"  {line}" for line in lines[1:]))

    # -- bootstrap.Reporter -------------------------------------------------------------------------------------

    def action(self, message: str) -> None:
        with self._lock:
            self._close_group()
            self._steps += 1
            step_progress = (self._steps - 1) * 100 // self.total_steps
            self._set_progress(min(step_progress, MAX_RUNNING_PROGRESS), message)
            # The group's title is the `►` line: the log viewer draws it with its own expander arrow.
            self._write(f"##[group]{self._clean_line(message)}")
            self._group_open = True

    def generate(self, message: str) -> None:
        self._symbol_line("✚", message)

    def waiting(self, message: str) -> None:
        self._symbol_line("◎", message)

    def success(self, message: str) -> None:
        self._symbol_line("✔", self.rewrite(message))

    def warning(self, message: str) -> None:
        text = self._clean_line(self.rewrite(message))
        with self._lock:
            self.warnings.append(text)
            self._write(command("task.logissue", text, type="warning"))

    def failure(self, message: str) -> None:
        """An error issue on the run; the open group is closed first, so the error shows in the log unfolded."""
        text = self._clean_line(self.rewrite(message))
        with self._lock:
            self._close_group()
            self.errors.append(text)
            self._write(command("task.logissue", text, type="error"))

    def detail(self, text: str) -> None:
        self._write(*(f"    {line}" for line in self._clean(self.rewrite(text.rstrip("\n"))).split("\n")))

    # -- the task's own commands --------------------------------------------------------------------------------

    def line(self, text: str) -> None:
        """A plain line (or several), outside the Reporter symbols: the task's first line, notes."""
        self._write(*self._clean(text).split("\n"))

    def progress(self, percent: int, text: str = "") -> None:
        """Moves the progress bar; never backwards, and below 100 until `complete()`."""
        with self._lock:
            self._set_progress(min(max(0, percent), MAX_RUNNING_PROGRESS), text)

    def _set_progress(self, percent: int, text: str) -> None:
        value = max(percent, self._progress)
        self._progress = value
        self._write(command("task.setprogress", self._clean_line(text), value=value))

    def set_output(self, name: str, value: str) -> None:
        """An output variable (`<step>.<name>` for later steps and jobs), exactly as given but masked.

        The value is the command's data (escaped by `command`): the agent reads the line as this command from its
        start, so nothing in the data can form another command, and later steps get the value unchanged. A line
        break is refused: an output variable is one line (the agent would turn it into `%0A` text or cut it)."""
        if not _VARIABLE.fullmatch(name):
            raise ValueError(f"not a variable name: {name!r}")
        if "\n" in value or "\r" in value:
            raise ValueError(f"the output variable {name} cannot hold a line break: output values are one line")
        self._write(command("task.setvariable", self.masker.mask(value), variable=name, isoutput=True))

    def write_summary(self, path: Path, markdown: str) -> None:
        """Writes the Markdown summary and uploads it. Attachments are not masked by the agent, so it is masked
        here: every secret form as it is, and as the summary's escaping writes it (`summary.escaped_forms`), for
        a summary built without `mask`."""
        path.write_text(self.masker.mask(markdown, escape=escaped_forms), encoding="utf-8")
        self.upload_summary(path)

    def upload_summary(self, path: str | os.PathLike[str]) -> None:
        """Attaches a Markdown file to the run's summary page (the agent uploads it; keep the file until the end)."""
        absolute = os.path.abspath(os.fspath(path))
        if one_line(absolute) != absolute:
            raise ValueError("the summary path holds characters a logging command cannot carry")
        self._write(command("task.uploadsummary", absolute))

    def complete(self, result: Result, message: str) -> None:
        """Closes the group and sets the step's result; the agent merges results (worst wins). Progress 100
        unless the step failed (the agent moves it to 100 on `task.complete` in any case)."""
        if result not in RESULTS:
            raise ValueError(f"not a task result: {result!r} (one of {', '.join(RESULTS)})")
        with self._lock:
            self._close_group()
            if result != "Failed":
                # The agent logs neither the progress text nor task.complete's message: the log's last line says it.
                # (A failure's message is already on the log as the error issue.)
                symbol = "✔" if result == "Succeeded" else "⚠️ "
                self._write(self._clean_line(f"{symbol} {message}"))
                self._progress = 100
                self._write(command("task.setprogress", self._clean_line(message), value=100))
            self._write(command("task.complete", self._clean_line(message), result=result))

    def close(self) -> None:
        """Closes an open group (at the end of a run, before lines that belong to no step)."""
        with self._lock:
            self._close_group()

    def _close_group(self) -> None:
        if self._group_open:
            self._write(endgroup())
            self._group_open = False


def _unchanged(text: str) -> str:
    return text
