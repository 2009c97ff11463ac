"""Flux-style progress lines on stderr: `►` action, `✚` generate, `◎` waiting, `✔` success, `⚠️` warning, `✗` failure.

Same symbols and layout as the Flux CLI (symbol, one space, message), so people who know
`flux bootstrap` read our output without a second look.
"""

from __future__ import annotations

import sys
from typing import TextIO


class TerminalReporter:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr

    def _line(self, symbol: str, message: str) -> None:
        print(symbol, message, file=self.stream, flush=True)

    def action(self, message: str) -> None:
        self._line("►", message)

    def generate(self, message: str) -> None:
        self._line("✚", message)

    def waiting(self, message: str) -> None:
        self._line("◎", message)

    def success(self, message: str) -> None:
        self._line("✔", message)

    def warning(self, message: str) -> None:
        self._line("⚠️ ", message)

    def failure(self, message: str) -> None:
        self._line("✗", message)

    def detail(self, text: str) -> None:
        for line in text.rstrip("\n").split("\n"):
            print(f"    {line}", file=self.stream)
