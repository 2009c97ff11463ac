"""Scalars and key order as go-yaml v2 (sigs.k8s.io/yaml) writes them: the bytes Flux commits."""

from __future__ import annotations

import pytest

from flux_azdo.manifests.goyaml import scalar, sort_keys


@pytest.mark.parametrize(
    "value",
    ["main", "1m0s", "./clusters/x", "ssh://git@host:2222/path.git", "v1.2.3", "1.2.3", "-foo", "a#b", "feature/x"],
)
def test_plain_strings_stay_plain(value: str) -> None:
    assert scalar(value) == value


@pytest.mark.parametrize(
    "value",
    ["true", "on", "y", "No", "~", "null", "123", "0x1F", "08", "1e3", "1_000", "2024-01-01", "1:30", ".5", ".inf", ""],
)
def test_strings_that_read_as_other_types_are_double_quoted(value: str) -> None:
    assert scalar(value) == f'"{value}"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a: b", "'a: b'"),
        ("#x", "'#x'"),
        ("*x", "'*x'"),
        ("- x", "'- x'"),
        ("-", "'-'"),
        (" x", "' x'"),
        ("it's: x", "'it''s: x'"),
    ],
)
def test_strings_that_cannot_be_plain_are_single_quoted(value: str, expected: str) -> None:
    assert scalar(value) == expected


def test_control_characters_are_escaped_in_double_quotes() -> None:
    assert scalar("a\tb") == '"a\\tb"'
    assert scalar("a\x01b") == '"a\\x01b"'
    assert scalar("a\U000e0001b") == '"a\\U000E0001b"'


def test_multi_line_values_are_refused() -> None:
    with pytest.raises(ValueError):
        scalar("a\nb")


def test_keys_sort_like_go_yaml() -> None:
    keys = ["volumes", "tolerations", "containers", "imagePullSecrets", "nodeSelector", "terminationGracePeriodSeconds"]
    assert sort_keys(keys) == [
        "containers",
        "imagePullSecrets",
        "nodeSelector",
        "terminationGracePeriodSeconds",
        "tolerations",
        "volumes",
    ]
    # Digit runs compare as numbers, and other runes sort before letters.
    assert sort_keys(["a10", "a2", "a1"]) == ["a1", "a2", "a10"]
    assert sort_keys(["ab", "a.b"]) == ["a.b", "ab"]
