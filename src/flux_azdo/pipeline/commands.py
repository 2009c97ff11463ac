"""Logging commands (`##vso[area.event k=v;]data`) written exactly as the agent reads them, and untrusted text
made harmless before it reaches the log.

How the agent reads our standard output (azure-pipelines-agent, `Agent.Sdk/ProcessInvoker.cs`,
`Microsoft.VisualStudio.Services.Agent/Command.cs`, `Agent.Sdk/CommandStringConvertor.cs`, `Logging.cs`):

- lines are cut by `StreamReader.ReadLine`, so a lone `\\r` ends a line just as `\\n` does;
- a line is a command when `##vso[` occurs *anywhere* in it (`string.IndexOf`, which is culture-sensitive: on
  Linux ICU ignores zero-width and other ignorable characters while matching); the command runs to the first `]`,
  its properties split on `;`, then on the first `=` (pairs with an empty key or value are dropped);
- property values and the data are unescaped in this order: `%3B` `;`, `%0D` `\\r`, `%0A` `\\n`, `%5D` `]`, then
  `%AZP25` `%` (knob DECODE_PERCENTS, on by default). Escaping `%` first and the rest after is the exact inverse;
- a line that mentions `##vso` without parsing gives a "CommandKeywordDetected" warning;
- `##[group]`/`##[endgroup]` are found anywhere in a line, ignoring case; `##[error]`, `##[warning]`,
  `##[section]` are formatting the log viewer applies.

So text from elsewhere (git server messages, Kubernetes conditions, what a user typed) goes through `neutralise`:
it can then neither form a command, nor a `##[` prefix, nor a second line, however it is written.
"""

from __future__ import annotations

import re
import unicodedata

PREFIX = "##vso["

_NAME = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Line ends as .NET's ReadLine sees them, plus the Unicode separators a viewer might break a line at.
_LINE_BREAK = re.compile(r"\r\n|[\r\n\u2028\u2029]")
# C0/C1 controls but tab: NUL is ignorable to ICU, ESC starts ANSI sequences the log viewer interprets.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_REPLACEMENT = "\ufffd"
#: Characters ICU gives no collation weight (Default_Ignorable_Code_Point beyond category Cf): a culture-sensitive
#: search for "##vso[" skips them, so "##\u00advso[" would still be a command to the agent.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xE0000, 0xE0FFF),
)
_DEFUSE = re.compile(r"#(?=#)")


def escape_property(value: str) -> str:
    """A property value: `%` first (to `%AZP25`), then `;`, CR, LF and `]`, the characters the parser splits on."""
    return (
        value.replace("%", "%AZP25").replace(";", "%3B").replace("\r", "%0D").replace("\n", "%0A").replace("]", "%5D")
    )


def escape_data(value: str) -> str:
    """The data after `]`: `%`, CR and LF (as task-lib's `escapedata`). A `]` or `;` there needs no escape (the
    command ended at the first `]`), and the agent's unescaping of `%3B`/`%5D` cannot touch `%AZP253B`."""
    return value.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A")


def command(name: str, data: str = "", **properties: str | int | bool | None) -> str:
    """One logging command line (no newline): `##vso[<name> k=v;...;]<data>`; None or "" properties are left out.

    Escapes, but does not neutralise: pass untrusted text through `neutralise`/`one_line` first.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a logging command name: {name!r}")
    pairs: list[str] = []
    for key, value in properties.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a logging command property name: {key!r}")
        if value is None or value == "":
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        pairs.append(f"{key}={escape_property(text)};")
    head = f"{name} {''.join(pairs)}" if pairs else name
    return f"{PREFIX}{head}]{escape_data(data)}"


def _ignorable(char: str) -> bool:
    if unicodedata.category(char) == "Cf":
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _IGNORABLE_RANGES)


def _visible(line: str) -> str:
    """The line as a culture-sensitive, case-insensitive search sees it: no ignorables, compatibility forms folded."""
    return unicodedata.normalize("NFKC", "".join(c for c in line if not _ignorable(c)))


def is_dangerous(line: str) -> bool:
    """Whether one line (no line breaks) could be read as a command, a keyword warning or a `##[` prefix."""
    folded = _visible(line).casefold()
    return "##vso" in folded or "##[" in folded


def _neutralise_line(line: str) -> str:
    line = _CONTROL.sub(_REPLACEMENT, line)
    if not is_dangerous(line):
        return line
    # Hostile or accidental: drop what hides characters, then break every "##" so no prefix is left at all.
    defused = _DEFUSE.sub("#_", _visible(line))
    if is_dangerous(defused):  # pragma: no cover - cannot happen: no "##" is left
        raise AssertionError("neutralise left a command prefix")
    return defused


def neutralise(text: str) -> str:
    """Untrusted text made safe to print: lines joined by `\\n` only (CR and CRLF become `\\n`), control characters
    replaced by U+FFFD, and in any line that could start a command (`##vso`) or a `##[` prefix, in any case, with
    ignorable characters in between or full-width forms, every `##` becomes `#_#`. Other lines are unchanged."""
    return "\n".join(_neutralise_line(line) for line in _LINE_BREAK.split(text))


def one_line(text: str) -> str:
    """`neutralise`, with the lines joined by a space: for command data, properties and group titles."""
    return " ".join(part for part in neutralise(text).split("\n") if part.strip()) if text else ""


def group(title: str) -> str:
    """Opens a collapsible group; the agent keeps one open group at a time (groups do not nest)."""
    return f"##[group]{one_line(title)}"


def endgroup() -> str:
    return "##[endgroup]"


def section(title: str) -> str:
    return f"##[section]{one_line(title)}"


def debug(text: str) -> str:
    """A line shown only when the pipeline runs with `System.Debug` true."""
    return command("task.debug", one_line(text))
