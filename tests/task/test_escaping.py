"""The three places that escape the data of a logging command agree: launcher.js (its own failures),
task_entry.py (failures before the product loads) and flux_azdo.pipeline.commands.escape_data (everything else).

An agent reads all three from the same stream, so a message must come out the same whichever one wrote it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest

from flux_azdo.pipeline.commands import escape_data
from support.task import TASK_SOURCE, node_executable

SAMPLES = [
    "",
    "plain text",
    "100% done",
    "%AZP25 already escaped once",
    "%0D%0A%3B%5D look like escapes",
    "line one\nline two",
    "windows\r\nline",
    "lone\rcarriage return",
    "semicolon; and ] bracket [",
    "##vso[task.complete result=Succeeded;]fake",
    "ünïcödé ✔ and emoji 🚀",
    "tab\there\x00nul",
]


@pytest.fixture(scope="module")
def launcher_escaped() -> list[str]:
    script = (
        f"const l = require({json.dumps(str(TASK_SOURCE / 'launcher.js'))});"
        "const samples = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify(samples.map(l.escapeData)));"
    )
    result = subprocess.run(
        [node_executable(), "-e", script], input=json.dumps(SAMPLES), capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    escaped: list[str] = json.loads(result.stdout)
    return escaped


def task_entry_escape() -> object:
    spec = importlib.util.spec_from_file_location("flux_task_entry_escaping", TASK_SOURCE / "task_entry.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._escape_data


def test_launcher_task_entry_and_the_pipeline_package_escape_alike(launcher_escaped: list[str]) -> None:
    entry = task_entry_escape()
    assert callable(entry)
    expected = [escape_data(sample) for sample in SAMPLES]
    assert launcher_escaped == expected
    assert [entry(sample) for sample in SAMPLES] == expected


def test_the_escaped_data_is_one_line_and_keeps_the_agents_escapes_apart(launcher_escaped: list[str]) -> None:
    for sample, escaped in zip(SAMPLES, launcher_escaped, strict=True):
        assert "\n" not in escaped and "\r" not in escaped, sample
    assert escape_data("%0A") == "%AZP250A"  # a literal "%0A" is not read back as a line break
