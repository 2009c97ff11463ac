"""The Flux manifests artifact is pulled from an OCI registry, verified and cached.

The product's real `OciDistributionFetcher` talks HTTP to `FakeOciRegistry`, which speaks
ghcr.io's wire format on 127.0.0.1 (Bearer challenge, anonymous token, blob redirect,
paginated tags). Nothing leaves the loopback interface.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flux_azdo.errors import UserError
from flux_azdo.manifests.distribution import read_distribution_bytes
from flux_azdo.registry.cache import LayerCache
from flux_azdo.registry.oci import OciDistributionFetcher, OciRepository
from flux_azdo.sandbox import SAMPLE_VERSION
from flux_azdo.sources import resolve_distribution
from support.fake_oci_registry import FakeOciRegistry, build_flux_layer, relabel_sample

REPOSITORY = "fluxcd/flux-manifests"
SAMPLE_COMPONENTS = (
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
    "source-watcher",
)
# Lexical order puts v2.5.0 last and v2.11.0-rc.1 above v2.10.1: only semver order finds v2.10.1.
RELEASE_TAGS = ("v2.5.0", "v2.10.1", "v2.11.0-rc.1")


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy configured on the machine must not see (or break) requests meant for the fake registry."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def registry(sample_text: str) -> Iterator[FakeOciRegistry]:
    fake = FakeOciRegistry()
    fake.push(REPOSITORY, SAMPLE_VERSION, build_flux_layer(sample_text))
    for tag in RELEASE_TAGS:
        fake.push(REPOSITORY, tag, build_flux_layer(relabel_sample(sample_text, tag)))
    fake.push(REPOSITORY, "latest", build_flux_layer(relabel_sample(sample_text, "v2.10.1")))
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _fetcher(registry: FakeOciRegistry, cache_dir: Path) -> OciDistributionFetcher:
    return OciDistributionFetcher(OciRepository.parse(registry.oci_url(REPOSITORY)), LayerCache(cache_dir))


def _cached_files(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*") if p.is_file())


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: bound by us to pick it, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_fetch_pulls_the_layer_through_the_token_challenge(registry: FakeOciRegistry, cache_dir: Path) -> None:
    layer = _fetcher(registry, cache_dir).fetch(SAMPLE_VERSION)

    expected_digest = registry.layer_digest(REPOSITORY, SAMPLE_VERSION)
    assert layer.digest == expected_digest
    assert f"sha256:{hashlib.sha256(layer.data).hexdigest()}" == expected_digest
    assert layer.from_cache is False
    assert layer.version == SAMPLE_VERSION
    assert layer.origin == f"oci://{registry.host}/{REPOSITORY}:{SAMPLE_VERSION}"

    dist = read_distribution_bytes(layer.data, layer.origin)
    assert dist.version == SAMPLE_VERSION
    assert dist.components == SAMPLE_COMPONENTS

    token_requests = registry.requests_to(r"/token$")
    assert len(token_requests) == 1
    assert token_requests[0].query["scope"] == [f"repository:{REPOSITORY}:pull"]
    assert token_requests[0].query["service"] == [registry.host]
    manifest_requests = registry.requests_to(rf"/v2/{REPOSITORY}/manifests/{SAMPLE_VERSION}$")
    assert [r.authorization is not None for r in manifest_requests] == [False, True]
    assert "application/vnd.oci.image.manifest.v1+json" in manifest_requests[-1].headers["accept"]
    assert [r.authorization is not None for r in registry.requests_to(rf"/v2/{REPOSITORY}/blobs/")] == [True]
    storage = registry.requests_to(rf"/storage/{expected_digest.removeprefix('sha256:')}$")
    assert len(storage) == 1
    # ghcr.io redirects blobs to another host, where requests drops the token; on one host it
    # keeps it. The fake records it but serves storage without auth either way, so it is not asserted.


def test_second_fetch_is_served_from_the_cache_without_any_request(registry: FakeOciRegistry, cache_dir: Path) -> None:
    first = _fetcher(registry, cache_dir).fetch(SAMPLE_VERSION)
    registry.clear_log()

    second = _fetcher(registry, cache_dir).fetch(SAMPLE_VERSION)

    assert second.from_cache is True
    assert second.digest == first.digest
    assert second.data == first.data
    assert registry.requests == []


def test_a_tampered_cache_file_is_ignored_and_replaced(registry: FakeOciRegistry, cache_dir: Path) -> None:
    good = _fetcher(registry, cache_dir).fetch(SAMPLE_VERSION)
    [cached] = _cached_files(cache_dir)
    assert cached.read_bytes() == good.data
    cached.write_bytes(good.data[:-1] + bytes([good.data[-1] ^ 0xFF]))
    registry.clear_log()

    again = _fetcher(registry, cache_dir).fetch(SAMPLE_VERSION)

    assert again.from_cache is False
    assert again.data == good.data
    assert len(registry.requests_to(rf"/v2/{REPOSITORY}/blobs/{good.digest}$")) == 1
    assert _cached_files(cache_dir) == [cached]
    assert cached.read_bytes() == good.data


def test_latest_is_the_highest_release_across_all_tag_pages(registry: FakeOciRegistry, cache_dir: Path) -> None:
    layer = _fetcher(registry, cache_dir).fetch("latest")

    assert layer.version == "v2.10.1"
    assert layer.digest == registry.layer_digest(REPOSITORY, "v2.10.1")
    assert read_distribution_bytes(layer.data, layer.origin).version == "v2.10.1"
    # Five tags at two per page: the client must have followed the Link header to the third page.
    pages = registry.requests_to(rf"/v2/{REPOSITORY}/tags/list$")
    assert [r.query.get("last") for r in pages if r.authorization] == [None, ["v0.0.0-sample"], ["v2.11.0-rc.1"]]


def test_an_unknown_version_says_to_check_the_version_flag(registry: FakeOciRegistry, cache_dir: Path) -> None:
    with pytest.raises(UserError) as raised:
        _fetcher(registry, cache_dir).fetch("v9.9.9")

    message = raised.value.message
    assert "v9.9.9" in message
    assert "check --version" in message
    assert "\n" not in message
    assert registry.requests_to(rf"/v2/{REPOSITORY}/manifests/v9.9.9$")
    assert _cached_files(cache_dir) == []


def test_a_corrupted_blob_is_rejected_and_not_cached(registry: FakeOciRegistry, cache_dir: Path) -> None:
    registry.corrupt_blobs = True
    digest = registry.layer_digest(REPOSITORY, SAMPLE_VERSION)

    with pytest.raises(UserError) as raised:
        _fetcher(registry, cache_dir).fetch(SAMPLE_VERSION)

    assert digest in raised.value.message
    assert registry.requests_to(rf"/storage/{digest.removeprefix('sha256:')}$")
    assert _cached_files(cache_dir) == []


def test_an_unreachable_registry_points_to_the_offline_manifests_flag(closed_port: int, tmp_path: Path) -> None:
    repository = OciRepository.parse(f"oci://127.0.0.1:{closed_port}/{REPOSITORY}")

    with pytest.raises(UserError) as raised:
        OciDistributionFetcher(repository, LayerCache(tmp_path / "cache")).fetch(SAMPLE_VERSION)

    message = raised.value.message
    assert f"cannot reach the registry 127.0.0.1:{closed_port}" in message
    assert "--manifests" in message
    assert "\n" not in message


def test_resolve_distribution_reports_an_unreachable_registry(
    closed_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # resolve_distribution builds its own fetcher on the user cache: keep that inside tmp_path.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    with pytest.raises(UserError) as raised:
        resolve_distribution(f"oci://127.0.0.1:{closed_port}/{REPOSITORY}", SAMPLE_VERSION)

    assert "cannot reach the registry" in raised.value.message
    assert "--manifests" in raised.value.message


def test_resolve_distribution_reports_download_then_cache(registry: FakeOciRegistry, cache_dir: Path) -> None:
    lines: list[str] = []

    first = resolve_distribution(None, SAMPLE_VERSION, progress=lines.append, fetcher=_fetcher(registry, cache_dir))
    registry.clear_log()
    second = resolve_distribution(None, SAMPLE_VERSION, progress=lines.append, fetcher=_fetcher(registry, cache_dir))

    assert first.version == second.version == SAMPLE_VERSION
    assert first.components == SAMPLE_COMPONENTS
    assert len(lines) == 2
    assert SAMPLE_VERSION in lines[0] and "downloaded" in lines[0]
    assert SAMPLE_VERSION in lines[1] and "cached" in lines[1]
    assert registry.requests == []


def _run_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"), "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "flux_azdo", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_cli_exports_the_components_pulled_from_the_registry(registry: FakeOciRegistry, tmp_path: Path) -> None:
    result = _run_cli(
        ["install", "--export", "--manifests", registry.oci_url(REPOSITORY), "--version", SAMPLE_VERSION], tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"---\n# This manifest was generated by flux. DO NOT EDIT.\n# Flux Version: {SAMPLE_VERSION}\n"
    )
    assert "downloaded" in result.stderr
    assert registry.requests_to(rf"/v2/{REPOSITORY}/manifests/{SAMPLE_VERSION}$")
    # The layer went to the cache under XDG_CACHE_HOME, not to the user's own cache.
    assert [p.name for p in _cached_files(tmp_path / "xdg-cache")] == [
        registry.layer_digest(REPOSITORY, SAMPLE_VERSION).replace(":", "-") + ".tar.gz"
    ]


def test_cli_fails_in_one_line_when_the_registry_is_unreachable(closed_port: int, tmp_path: Path) -> None:
    result = _run_cli(
        [
            "install",
            "--export",
            "--manifests",
            f"oci://127.0.0.1:{closed_port}/{REPOSITORY}",
            "--version",
            SAMPLE_VERSION,
        ],
        tmp_path,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("✗ ")
    assert "--manifests" in line


def test_an_oci_reference_needs_the_oci_scheme() -> None:
    with pytest.raises(UserError) as raised:
        OciRepository.parse("ghcr.io/fluxcd/flux-manifests")

    assert "oci://" in raised.value.message


@pytest.mark.parametrize("version", [SAMPLE_VERSION, "latest"])
def test_a_captive_portal_is_a_one_line_error_not_a_traceback(
    registry: FakeOciRegistry, tmp_path: Path, version: str
) -> None:
    registry.captive_portal = True
    with pytest.raises(UserError) as raised:
        _fetcher(registry, tmp_path / "cache").fetch(version)
    assert "answered with text/html, not JSON" in raised.value.message
    assert "captive portal" in raised.value.message and "--manifests" in raised.value.message

    result = _run_cli(
        ["install", "--export", "--manifests", registry.oci_url(REPOSITORY), "--version", version], tmp_path
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("✗ ") and "not JSON" in line


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("oci://user:secret@ghcr.io/fluxcd/flux-manifests", "credentials in an oci:// reference are not supported"),
        (
            "oci://ghcr.io/fluxcd/flux-manifests:v2.9.4",
            "names a tag: pass --manifests oci://ghcr.io/fluxcd/flux-manifests and the tag with --version",
        ),
    ],
)
def test_oci_reference_mistakes_are_explained(reference: str, message: str) -> None:
    with pytest.raises(UserError) as raised:
        OciRepository.parse(reference)
    assert message in raised.value.message and "secret" not in raised.value.message


def test_oci_scheme_is_case_insensitive() -> None:
    assert OciRepository.parse("OCI://GHCR.io/fluxcd/flux-manifests") == OciRepository(
        "ghcr.io", "fluxcd/flux-manifests"
    )


def test_empty_manifests_flag_is_an_error() -> None:
    with pytest.raises(UserError, match="--manifests is empty"):
        resolve_distribution("", None)
