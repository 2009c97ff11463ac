"""Secrets registered with the agent in every form they travel in, once, and masked in our own lines."""

from __future__ import annotations

import base64
import io
import json
import math
from urllib.parse import quote

import pytest
from test_commands import agent_lines, parse_line

from flux_azdo.pipeline.masking import Masker, base64_cuts, basic_credentials

PAT = "3xq7kz2m4n5p6r7s8t9u0v1w2x3y4z5a6b7c8d9e0f1g2h3i4j5k"
SSH_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDq8pTNJ9vL0b1v9Vb8aVw6m3x1Y2Z3c4d5e6f7g8h9iAAAAJgAbCdEAGwn\n"
    "short\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


def registered(output: str) -> list[str]:
    """The values of the setsecret commands, as the agent reads them; fails on any other line."""
    values = []
    for line in agent_lines(output):
        parsed = parse_line(line)
        assert parsed is not None and parsed.name == "task.setsecret" and not parsed.properties, line
        values.append(parsed.data)
    return values


def test_a_pat_is_registered_with_its_base64_and_basic_forms_each_once() -> None:
    out = io.StringIO()
    masker = Masker(out)
    masker.register(PAT, usernames=["build", "build"])
    values = registered(out.getvalue())
    assert values[0] == PAT
    assert len(values) == len(set(values))
    assert basic_credentials("", PAT) == base64.b64encode(f":{PAT}".encode()).decode()
    assert basic_credentials("", PAT) in values
    assert basic_credentials("build", PAT) in values
    for cut in base64_cuts(PAT):
        assert cut in values
    assert set(values) == masker.forms

    masker.register(PAT, usernames=["build"])
    assert registered(out.getvalue()) == values  # nothing printed twice


@pytest.mark.parametrize("before", range(6))
@pytest.mark.parametrize("after", range(4))
def test_a_secret_inside_a_larger_base64_blob_is_found_at_any_offset(before: int, after: int) -> None:
    masker = Masker(io.StringIO())
    masker.register(PAT)
    blob = base64.b64encode(b"\x01\x02\x03\x04\x05"[:before] + PAT.encode() + b"\xff\xfe\xfd"[:after]).decode()
    masked = masker.mask(f"client-key-data: {blob}")
    assert "***" in masked
    left = masked.removeprefix("client-key-data: ")
    # what stays: the neighbours' own characters, the padding, and at most one character at each edge that mixes
    # the secret's bits with theirs
    neighbours = math.ceil(8 * before / 6) + math.ceil(8 * after / 6) + 2
    assert len(left.replace("***", "")) <= neighbours + 2


def test_base64_cuts_depend_on_the_value_alone() -> None:
    for cut, offset in zip(base64_cuts("secret-value"), range(3), strict=True):
        for filler in (b"\x00", b"\xff", b"a"):
            encoded = base64.b64encode(filler * offset + b"secret-value" + filler * 2).decode()
            assert cut in encoded


def test_an_http_basic_header_is_masked_whole() -> None:
    masker = Masker(io.StringIO())
    masker.register(PAT, usernames=["pat-user"])
    for user in ("", "pat-user"):
        header = f"Authorization: Basic {base64.b64encode(f'{user}:{PAT}'.encode()).decode()}"
        assert masker.mask(header) == "Authorization: Basic ***"


def test_a_multi_line_secret_is_registered_line_by_line_never_as_one_value() -> None:
    out = io.StringIO()
    masker = Masker(out)
    masker.register(SSH_KEY)
    values = registered(out.getvalue())
    assert all("\n" not in value and "\r" not in value for value in values)
    long_lines = [line for line in SSH_KEY.splitlines() if len(line) >= 8 and not line.startswith("-----")]
    for line in long_lines:
        assert line in values
    assert "short" not in values
    # PEM armour is in every key and certificate: registering it would mask them all, and it is no secret
    assert not [value for value in values if value.startswith("-----")]
    for embedded in (SSH_KEY, SSH_KEY.rstrip("\n")):
        kubeconfig_field = base64.b64encode(embedded.encode()).decode()
        assert masker.mask(f"client-key-data: {kubeconfig_field}").count("***") >= 1
        assert len(masker.mask(kubeconfig_field).replace("***", "")) <= 8
    printed = "\n".join(f"  {line}" for line in SSH_KEY.splitlines())
    for line in masker.mask(printed).split("\n"):
        assert line.strip() in ("***", "short") or line.strip().startswith("-----")
    certificate = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUb3Vy\n-----END CERTIFICATE-----"
    assert masker.mask(certificate).startswith("-----BEGIN CERTIFICATE-----\n")


def test_the_url_encoded_form_is_registered_when_it_differs() -> None:
    out = io.StringIO()
    masker = Masker(out)
    secret = "p@ss/word+x;y]z%"
    masker.register(secret)
    values = registered(out.getvalue())
    assert secret in values  # the escaping of ; ] % came back exactly
    assert quote(secret, safe="") in values
    assert (
        masker.mask(f"https://user:{quote(secret, safe='')}@dev.azure.com/org") == "https://user:***@dev.azure.com/org"
    )
    plain = Masker(io.StringIO())
    plain.register(PAT)
    assert quote(PAT, safe="") == PAT


def test_a_json_escaped_secret_is_masked_in_our_lines() -> None:
    masker = Masker(io.StringIO())
    secret = 'quo"te\\back'
    masker.register(secret)
    assert masker.mask(json.dumps({"password": secret})) == '{"password": "***"}'


@pytest.mark.parametrize("padded", [PAT + "\n", f"  {PAT}\t", f"\r\n{PAT} \r\n"])
def test_a_single_line_secret_is_registered_without_surrounding_white_space(padded: str) -> None:
    out = io.StringIO()
    masker = Masker(out)
    masker.register(padded)
    values = registered(out.getvalue())
    assert values[0] == PAT
    assert basic_credentials("", PAT) in values  # the forms are those of the stripped value too
    assert masker.mask(f"token={PAT};") == "token=***;"


@pytest.mark.parametrize("short", ["Q", "Qz", "Qz7", " Qz7 ", "Qz7\n"])
def test_a_too_short_secret_is_not_registered_and_warned_about_by_name(short: str) -> None:
    out = io.StringIO()
    masker = Masker(out)
    masker.register(short, name="the input gitPat")
    masker.register(short, name="the input gitPat")
    assert out.getvalue() == ""
    assert masker.warnings == ["the input gitPat is shorter than 4 characters and cannot be masked in the log"]
    assert masker.take_warnings() == masker.warnings
    assert masker.take_warnings() == []
    assert masker.mask(f"a {short.strip()} b") == f"a {short.strip()} b"  # ordinary text stays readable
    masker.register(PAT)
    assert masker.mask(PAT) == "***"  # the run goes on: later secrets are registered as before


@pytest.mark.parametrize("empty", ["", "   ", "\n\n"])
def test_an_empty_secret_is_nothing_to_mask_or_warn_about(empty: str) -> None:
    out = io.StringIO()
    masker = Masker(out)
    masker.register(empty, name="the input gitPat")
    assert out.getvalue() == "" and masker.warnings == []


def test_mask_leaves_other_text_alone() -> None:
    masker = Masker(io.StringIO())
    assert masker.mask("nothing registered") == "nothing registered"
    masker.register(PAT)
    assert masker.mask(f"token {PAT} and {PAT}!") == "token *** and ***!"
    assert masker.mask("ordinary words and a sha 0123456789abcdef") == "ordinary words and a sha 0123456789abcdef"
