"""Go durations, Flux version ordering and component selection."""

from __future__ import annotations

import pytest

from flux_azdo.errors import UserError
from flux_azdo.manifests.components import select_components
from flux_azdo.manifests.durations import flux_interval, format_go_duration, parse_go_duration
from flux_azdo.manifests.versions import FluxVersion


@pytest.mark.parametrize(
    ("text", "formatted"),
    [
        ("1m", "1m0s"),
        ("10m", "10m0s"),
        ("60m", "1h0m0s"),
        ("30s", "30s"),
        ("90s", "1m30s"),
        ("1h30m", "1h30m0s"),
        ("1.5h", "1h30m0s"),
        ("1.5s", "1.5s"),
        ("500ms", "500ms"),
        ("1500ms", "1.5s"),
        ("2h45m", "2h45m0s"),
        ("1h0m0s", "1h0m0s"),
        ("0.5m", "30s"),
    ],
)
def test_intervals_are_written_as_go_durations(text: str, formatted: str) -> None:
    assert flux_interval(text) == formatted


@pytest.mark.parametrize(
    ("ns", "text"), [(1000, "1µs"), (1500, "1.5µs"), (999, "999ns"), (-90 * 10**9, "-1m30s"), (0, "0s")]
)
def test_small_and_negative_durations_format_like_go(ns: int, text: str) -> None:
    assert format_go_duration(ns) == text
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "1", "abc", "1x", "1h2", ".s", "1..5s", "m"])
def test_unparsable_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


@pytest.mark.parametrize("text", ["soon", "5", "0s", "-1m", "100us"])
def test_interval_flag_errors_say_how_to_fix(text: str) -> None:
    with pytest.raises(UserError) as raised:
        flux_interval(text)
    assert "--interval" in raised.value.message
    assert "\n" not in raised.value.message


def test_versions_order_by_semver_precedence() -> None:
    ordered = ["v0.0.0-sample", "v2.0.0-rc.1", "v2.0.0-rc.5", "v2.0.0", "v2.7.0", "v2.7.2", "v2.10.0"]
    parsed = [FluxVersion.parse(v) for v in ordered]
    assert sorted(reversed(parsed)) == parsed
    assert FluxVersion.parse("v2.0.0-rc.10") > FluxVersion.parse("v2.0.0-rc.9")


def test_version_without_v_prefix_is_explained() -> None:
    with pytest.raises(UserError, match="must be prefixed with 'v': use --version v2.6.4"):
        FluxVersion.parse("2.6.4")
    with pytest.raises(UserError, match="not a Flux release version"):
        FluxVersion.parse("main")


def test_components_keep_the_order_given() -> None:
    assert select_components(["kustomize-controller", "source-controller"], ["source-watcher"]) == (
        "kustomize-controller",
        "source-controller",
        "source-watcher",
    )


@pytest.mark.parametrize(
    ("components", "extras", "message"),
    [
        (["source-controller", "kustomize-controller", "tekton"], [], "component 'tekton' is not available"),
        (["source-controller", "kustomize-controller"], ["source-controller"], "listed twice"),
        (["kustomize-controller"], [], "component 'source-controller' is required"),
        (["source-controller", "helm-controller"], [], "component 'kustomize-controller' is required"),
    ],
)
def test_component_mistakes(components: list[str], extras: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        select_components(components, extras)
