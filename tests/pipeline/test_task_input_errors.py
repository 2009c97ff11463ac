"""A bad input stops `FluxBootstrap@1` with a line that names the input, never the CLI flag the shared code knows.

The validation is the CLI's (InstallOptions, SyncOptions, the URL parser, ...), worded for its flags; the task
replaces each flag by the input (YAML key) that sets it. Each case runs `flux_azdo.pipeline.main.main` in this
process with a job's environment: the whole task path after the Node launcher (which `test_task_*` runs through
node). Every case fails before anything connects: the cluster and the organisation are a closed port, and the
Flux version is the sample one in a seeded cache (nothing is downloaded).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from flux_azdo.pipeline.inputs import FLAG_INPUTS
from flux_azdo.pipeline.main import main
from support.agent import SAMPLE_VERSION, parse_run, seed_distribution_cache

CLOSED = "127.0.0.1:9"
#: Any of the CLI's flags the task knows an input for, as a whole word.
OUR_FLAGS = re.compile(r"(?<![\w-])(" + "|".join(re.escape(flag) for flag in FLAG_INPUTS) + r")(?![\w-])")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cache")
    seed_distribution_cache(folder)
    return folder


def job(tmp_path: Path, **inputs: str) -> tuple[dict[str, str], Path]:
    temp = tmp_path / "_temp"
    temp.mkdir(parents=True)
    kubeconfig = tmp_path / "kubeconfig"
    cluster = {"server": f"https://{CLOSED}"}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": "a-token-nobody-checks"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    kubeconfig.write_text(json.dumps(config), encoding="utf-8")
    environ = {
        "SYSTEM_COLLECTIONURI": f"http://{CLOSED}/org/",
        "SYSTEM_TEAMPROJECT": "platform",
        "AGENT_TEMPDIRECTORY": str(temp),
        "ENDPOINT_AUTH_PARAMETER_SYSTEMVSSCONNECTION_ACCESSTOKEN": "the-job-token-0123456789",
        "INPUT_CONNECTIONTYPE": "kubeconfigFile",
        "INPUT_KUBECONFIG": str(kubeconfig),
        "INPUT_REPOSITORYURL": "fleet-infra",
        "INPUT_ALLOWINSECUREHTTP": "true",
        "INPUT_CLUSTERPAT": "the-cluster-pat-0123456789",
        "INPUT_FLUXVERSION": SAMPLE_VERSION,
        "INPUT_TIMEOUT": "20s",
    }
    environ.update({"INPUT_" + name.upper(): value for name, value in inputs.items()})
    return environ, temp


# (the input that is wrong, the inputs of the step, a part of the expected line)
CASES = [
    ("registry", {"registry": "https://ghcr.io/fluxcd"}, "registry='https://ghcr.io/fluxcd' must be"),
    ("registryCredentials", {"registryCredentials": "user:password"}, "registryCredentials requires imagePullSecret"),
    (
        "registryCredentials",
        {"registryCredentials": "no-colon-here", "imagePullSecret": "regcred"},
        "registryCredentials has an invalid format",
    ),
    ("imagePullSecret", {"imagePullSecret": "Reg_Cred"}, "imagePullSecret='Reg_Cred' is not a valid Secret name"),
    ("secretName", {"secretName": "Flux_System"}, "secretName='Flux_System' is not a valid Kubernetes name"),
    ("name", {"name": "Flux_System"}, "name='Flux_System' is not a valid Kubernetes name"),
    ("branch", {"branch": "a..b"}, "branch='a..b' is not a valid Git branch name"),
    ("repositoryUrl", {"repositoryUrl": "ftp://example.test/r"}, "repositoryUrl 'ftp://example.test/r': scheme"),
    ("clusterDomain", {"clusterDomain": "cluster_local"}, "clusterDomain='cluster_local' is not a DNS domain"),
    ("tolerationKeys", {"tolerationKeys": "bad key!"}, "tolerationKeys has an invalid key 'bad key!'"),
    ("timeout", {"timeout": "soon"}, "timeout='soon' is not a positive duration"),
    ("interval", {"interval": "often"}, "interval='often' is not a duration"),
    ("fluxVersion", {"fluxVersion": "2.4.0"}, "use fluxVersion v2.4.0"),
    (
        "manifests",
        {"manifests": "no/such/gotk-components.yaml"},
        "manifests no/such/gotk-components.yaml: no such file or folder",
    ),
    (
        "workloadIdentityClientId",
        {"clusterAuth": "workloadIdentity", "workloadIdentityClientId": "not-a-guid"},
        "workloadIdentityClientId='not-a-guid' is not a GUID",
    ),
    (
        "workloadIdentityTenantId",
        {
            "clusterAuth": "workloadIdentity",
            "workloadIdentityClientId": "00000000-0000-4000-8000-000000000001",
            "workloadIdentityTenantId": "contoso",
        },
        "workloadIdentityTenantId='contoso' is not a GUID",
    ),
]


@pytest.mark.parametrize(("wrong", "inputs", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("action", ["bootstrap", "plan"])
def test_a_bad_input_is_named_by_its_input_and_never_by_a_flag(
    tmp_path: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    wrong: str,
    inputs: dict[str, str],
    expected: str,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    environ, temp = job(tmp_path, action=action, **inputs)
    out = io.StringIO()

    assert main(environ, out) == 0

    run = parse_run(0, out.getvalue(), "", temp)
    assert (run.result, run.outputs["result"]) == ("Failed", "failed"), run.stdout
    assert len(run.errors) == 1 and expected in run.errors[0], run.errors
    assert wrong in run.errors[0]
    assert OUR_FLAGS.findall(run.stdout + run.summary) == []
    assert f"{wrong}" in run.summary


def test_a_missing_cluster_credential_blocks_check_naming_the_input(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check with clusterAuth pat and no clusterPat (or sshKey without the file) is not ready: the cluster would
    have no credential. The organisation does not answer here; the item is there whatever the rest says."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    for auth, name in (("pat", "clusterPat"), ("sshKey", "sshKey"), ("workloadIdentity", "workloadIdentityClientId")):
        environ, temp = job(tmp_path / auth, action="check", clusterAuth=auth, clusterPat="", timeout="5s")
        out = io.StringIO()
        main(environ, out)
        run = parse_run(0, out.getvalue(), "", temp)
        assert (run.result, run.outputs["result"]) == ("Failed", "blocked"), run.stdout
        assert f"({name}) is required with clusterAuth {auth}" in run.stdout
        assert "cluster-credential" in run.summary
        assert OUR_FLAGS.findall(run.stdout + run.summary) == []


def test_a_failure_while_finishing_still_completes_the_step_with_one_masked_line(tmp_path: Path) -> None:
    """The last resort around the outcome and `_finish`: an output value with a line break (set_output refuses
    it), or a summary builder that breaks, still ends in one error line and `task.complete result=Failed`, exit 0;
    the traceback only with System.Debug, masked."""
    from flux_azdo.pipeline.actions import Outcome
    from flux_azdo.pipeline.main import conclude
    from flux_azdo.pipeline.masking import Masker
    from flux_azdo.pipeline.reporter import PipelineReporter

    secret = "a-secret-value-0123456789"

    def broken_builder() -> Outcome:
        raise RuntimeError(f"the builder broke on {secret}")

    def newline_output() -> Outcome:
        return Outcome("Succeeded", "changed", "done", "## summary", {"fluxVersion": f"v2\n{secret}"})

    for build, debug in ((broken_builder, False), (newline_output, False), (broken_builder, True)):
        out = io.StringIO()
        masker = Masker(out)
        masker.register(secret)
        reporter = PipelineReporter(out, masker, total_steps=1)

        conclude(build, "bootstrap", None, reporter, debug=debug)

        run = parse_run(0, out.getvalue(), "", tmp_path)
        assert run.result == "Failed"
        assert len(run.errors) == 1 and "stopped on an unexpected" in run.errors[0]
        assert ("Traceback" in run.stdout) is debug
        assert secret not in run.stdout.replace(f"##vso[task.setsecret]{secret}", "")


def test_an_ssh_repository_url_that_is_not_ssh_stops_before_the_secure_file_is_downloaded(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The organisation is a closed port: had the key been downloaded first, the line would be about that."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    file_id = "5d0c3e1a-0000-4000-8000-000000000009"
    environ, temp = job(
        tmp_path,
        action="plan",
        clusterAuth="sshKey",
        sshKey=file_id,
        sshRepositoryUrl="https://example.test/org/project/_git/repo",
    )
    environ[f"SECUREFILE_TICKET_{file_id}"] = "a-ticket-0123456789"
    environ[f"SECUREFILE_NAME_{file_id}"] = "deploy.key"
    out = io.StringIO()

    main(environ, out)

    run = parse_run(0, out.getvalue(), "", temp)
    assert run.errors[0].startswith("input sshRepositoryUrl https://example.test/org/project/_git/repo is not an SSH")
    assert list(temp.iterdir()) == [run.summary_path]
