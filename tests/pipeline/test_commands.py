"""Logging commands as the agent reads them, and untrusted text that must never become one.

`parse_line` below is written from the agent's rules (azure-pipelines-agent `Command.TryParse` and
`CommandStringConvertor.Unescape`), independently of `flux_azdo.pipeline.commands`: the command starts at the first
`##vso[` in a line and ends at the next `]`; properties split on `;`, then on the first `=` (pairs with an empty
key or value dropped, keys case-insensitive); property values and data unescape `%3B`, `%0D`, `%0A`, `%5D`, then
`%AZP25`. Lines are cut as .NET's ReadLine cuts them: at CR, LF and CRLF. The other test files import it.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field

import pytest

from flux_azdo.pipeline.commands import (
    command,
    debug,
    endgroup,
    escape_data,
    escape_property,
    group,
    neutralise,
    one_line,
    section,
)

_PREFIX = "##vso["


@dataclass
class Parsed:
    name: str
    properties: dict[str, str] = field(default_factory=dict)
    data: str = ""


def unescape(value: str) -> str:
    for token, char in (("%3B", ";"), ("%0D", "\r"), ("%0A", "\n"), ("%5D", "]")):
        value = value.replace(token, char)
    return value.replace("%AZP25", "%")


def parse_line(line: str) -> Parsed | None:
    start = line.find(_PREFIX)
    if start < 0:
        return None
    end = line.find("]", start)
    if end < 0:
        return None
    info = line[start + len(_PREFIX) : end]
    space = info.find(" ")
    name = info if space < 0 else info[:space]
    if len([part for part in name.split(".") if part]) != 2:
        return None
    parsed = Parsed(name=name)
    if space > 0:
        for pair in info[space + 1 :].split(";"):
            key, _, value = pair.partition("=")
            if key and value:
                parsed.properties[key.lower()] = unescape(value)
    parsed.data = unescape(line[end + 1 :])
    return parsed


def agent_lines(output: str) -> list[str]:
    """The stream cut as the agent's ReadLine cuts it (the last, empty piece after a final newline dropped)."""
    lines = re.split(r"\r\n|\r|\n", output)
    return lines[:-1] if lines and lines[-1] == "" else lines


def keyword_free(line: str) -> bool:
    """No command, no `##vso` keyword warning, no `##[` formatting prefix, whatever the case, and none either
    once the characters a culture-sensitive search skips (format characters, variation selectors, the combining
    grapheme joiner) are gone and full-width forms are folded."""
    hidden = "".join(c for c in line if unicodedata.category(c) not in ("Cf", "Cc") and not 0xFE00 <= ord(c) <= 0xFE0F)
    for seen in (line, unicodedata.normalize("NFKC", hidden.replace("\u034f", ""))):
        folded = seen.casefold()
        if parse_line(seen) is not None or "##vso" in folded or "##[" in folded:
            return False
    return True


HOSTILE = [
    "##vso[task.setvariable variable=x]y",
    "remote: ##vso[task.setvariable variable=x;isOutput=true]pwned",
    "##vso[task.complete result=Failed;]stop",
    "a]b;c=d;%e%3B%0A%AZP25",
    "line one\r##vso[task.setsecret]x",
    "line one\r\n##[group]fake group\n##[endgroup]",
    "##[error]not really an error",
    "##[ENDGROUP]",
    "##\u00advso[task.setvariable variable=x]soft hyphen",
    "#\u200b#vso[task.setvariable variable=x]zero width space",
    "#\u2060#[group]word joiner",
    "##\ufeffvso[x.y]bom",
    "##v\u200dso[x.y]zwj inside the keyword",
    "##\x00vso[x.y]nul",
    "\uff03\uff03vso\uff3bx.y]full width",
    "##VSO[task.setvariable variable=x]upper",
    "##v\u017fo[x.y]long s",
    "###vso[x.y]three hashes",
    "\x1b[8mhidden\x1b[0m ##vso[x.y]",
    "ünïcødé ✔ 🚀 ##vso[task.logissue type=error]boom",
]


# -- escaping ---------------------------------------------------------------------------------------------------

VALUES = [
    "plain",
    ";",
    "]",
    "%",
    "%3B",
    "%AZP25",
    "%%AZP25%3B%0A%0D%5D",
    "a;b]c%d\re\nf",
    "=starts with equals",
    "k=v;x=y",
    "ünïcødé ✔ 🚀 日本語",
    "##vso[task.setvariable variable=x]y",
]


@pytest.mark.parametrize("value", VALUES)
def test_a_property_value_and_the_data_come_back_exactly_as_given(value: str) -> None:
    line = command("task.setvariable", value, variable="name", other=value)
    assert "\n" not in line and "\r" not in line
    parsed = parse_line(line)
    assert parsed is not None
    assert parsed.name == "task.setvariable"
    assert parsed.properties == {"variable": "name", "other": value}
    assert parsed.data == value


def test_the_command_has_the_shape_of_the_contract() -> None:
    assert (
        command("task.setvariable", "v", variable="x", isoutput="true")
        == "##vso[task.setvariable variable=x;isoutput=true;]v"
    )
    assert command("task.setsecret", "s") == "##vso[task.setsecret]s"
    assert command("task.setprogress", "half", value=50) == "##vso[task.setprogress value=50;]half"
    assert command("task.setvariable", "v", variable="x", isoutput=True) == command(
        "task.setvariable", "v", variable="x", isoutput="true"
    )


def test_empty_properties_are_left_out_as_the_agent_would_drop_them() -> None:
    assert command("task.logissue", "m", type="warning", sourcepath="", linenumber=None) == (
        "##vso[task.logissue type=warning;]m"
    )


def test_escaping_percent_first_is_the_inverse_of_the_agents_unescaping() -> None:
    assert escape_property("%3B") == "%AZP253B"
    assert unescape(escape_property("%3B")) == "%3B"
    assert escape_property("a;b]c\r\n") == "a%3Bb%5Dc%0D%0A"
    assert escape_data("a;b]c%\r\n") == "a;b]c%AZP25%0D%0A"
    assert unescape(escape_data("a;b]c%3B")) == "a;b]c%3B"


@pytest.mark.parametrize("name", ["task", "task.", ".x", "task.set variable", "a.b.c", "task]x", ""])
def test_a_bad_command_name_is_a_programming_error(name: str) -> None:
    with pytest.raises(ValueError):
        command(name)


@pytest.mark.parametrize("key", ["a b", "a=b", "a;b", "a]b", "", "1x"])
def test_a_bad_property_name_is_a_programming_error(key: str) -> None:
    with pytest.raises(ValueError):
        command("task.setvariable", "v", **{key: "x"})


# -- neutralising -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [text for text in HOSTILE if not text.startswith("a]b")])
def test_the_hostile_inputs_are_hostile_before_neutralising(text: str) -> None:
    assert not all(keyword_free(line) for line in agent_lines(text + "\n"))


@pytest.mark.parametrize("text", HOSTILE)
def test_untrusted_text_never_forms_a_command_or_a_prefix_on_any_line(text: str) -> None:
    safe = neutralise(text)
    assert "\r" not in safe
    for line in agent_lines(safe + "\n"):
        assert keyword_free(line), line
        assert "\x00" not in line and "\x1b" not in line


@pytest.mark.parametrize("text", HOSTILE)
def test_untrusted_text_inside_a_commands_data_stays_data(text: str) -> None:
    line = command("task.logissue", one_line(text), type="warning")
    lines = agent_lines(line + "\n")
    assert len(lines) == 1
    parsed = parse_line(lines[0])
    assert parsed is not None and parsed.name == "task.logissue"
    assert parsed.properties == {"type": "warning"}
    # the agent prints the issue as "##[warning]<data>": that line must not hold a second prefix
    assert keyword_free(parsed.data)
    assert "\n" not in parsed.data and "\r" not in parsed.data


def test_neutralise_keeps_ordinary_text_and_its_lines() -> None:
    text = "⚠️ 👩\u200d💻 café — naïve\ttab\nsecond line #1 (issue #42)\n\nfourth"
    assert neutralise(text) == text
    assert neutralise("a\r\nb\rc\nd") == "a\nb\nc\nd"


def test_a_defused_line_still_reads_as_what_it_said() -> None:
    assert neutralise("remote: ##vso[task.setvariable variable=x]y") == "remote: #_#vso[task.setvariable variable=x]y"
    assert neutralise("##[group]x") == "#_#[group]x"
    assert neutralise("###vso[") == "#_#_#vso["


def test_control_characters_are_replaced() -> None:
    assert neutralise("a\x1b[31mred\x00") == "a\ufffd[31mred\ufffd"


def test_no_random_mixture_of_the_dangerous_characters_survives() -> None:
    alphabet = ["#", "#", "#", "v", "s", "o", "V", "S", "O", "[", "]", ";", "%", "\r", "\n", "\u00ad", "\u200b"]
    alphabet += ["\u2060", "\ufeff", "\x00", "\uff03", "\uff3b", "\u017f", " ", "x", "\ufe0f", "\u034f"]
    rng = random.Random(6)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
        safe = neutralise(text)
        for line in agent_lines(safe + "\n"):
            assert keyword_free(line), repr(text)
        assert "\n" not in one_line(text) and "\r" not in one_line(text)


def test_one_line_joins_the_lines() -> None:
    assert one_line("first\r\nsecond\rthird\n\n") == "first second third"
    assert one_line("") == ""


# -- formatting helpers -----------------------------------------------------------------------------------------


def test_group_section_and_debug_lines() -> None:
    assert group("installing components") == "##[group]installing components"
    assert endgroup() == "##[endgroup]"
    assert section("Flux") == "##[section]Flux"
    assert debug("details") == "##vso[task.debug]details"


def test_a_hostile_title_opens_exactly_one_group() -> None:
    line = group("x\n##[endgroup]\r##vso[task.complete result=Failed]")
    lines = agent_lines(line + "\n")
    assert len(lines) == 1
    assert lines[0].startswith("##[group]")
    assert keyword_free(lines[0][len("##[group]") :])
    parsed = parse_line(debug("##vso[task.setsecret]x\ny"))
    assert parsed is not None and parsed.name == "task.debug" and keyword_free(parsed.data)
