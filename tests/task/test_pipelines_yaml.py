"""Every pipeline under pipelines/ parses, and every FluxBootstrap@1 step in them is one the server would accept.

A step may only use declared input names or their aliases, must give every required input that its visible rules
show (with task.json's defaults for the rest, as the agent fills them in), and templates must be called with
parameters they declare. Template expressions (`${{ }}`, `$( )`) count as given: their values are not known here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.task import REPO, task_definition

PIPELINES = REPO / "pipelines"
TASK_REFERENCES = {"fluxbootstrap@1", "fd82ee83-d18e-404c-a0e9-39f2f600697b@1",
                   "flux-azdo.flux-azdo.flux-bootstrap-task.fluxbootstrap@1"}  # fmt: skip
YAML_FILES = sorted(p for p in PIPELINES.rglob("*") if p.suffix in (".yml", ".yaml"))
EXPRESSION = re.compile(r"\$\{\{|\$\(|\$\[")


def declared_inputs() -> dict[str, dict[str, Any]]:
    items = task_definition()["inputs"]
    assert isinstance(items, list)
    return {item["name"]: item for item in items}


def canonical_names() -> dict[str, str]:
    names = {}
    for name, item in declared_inputs().items():
        names[name.lower()] = name
        for alias in item.get("aliases", []):
            names[alias.lower()] = name
    return names


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def flux_steps(document: Any) -> list[dict[str, Any]]:
    return [n for n in walk(document) if isinstance(n.get("task"), str) and n["task"].lower() in TASK_REFERENCES]


def step_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs of a step, with `${{ if }}:` insertions flattened in."""
    flat: dict[str, Any] = {}
    for key, value in (inputs or {}).items():
        if isinstance(key, str) and key.startswith("${{") and isinstance(value, dict):
            flat.update(step_inputs(value))
        else:
            flat[key] = value
    return flat


def as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else "" if value is None else str(value)


def visible(rule: str | None, values: dict[str, str]) -> bool | None:
    """The visible rule's outcome for these values; None when a value it depends on is an expression."""
    if not rule:
        return True
    joiner = "||" if "||" in rule else "&&"
    outcomes = []
    for clause in rule.split(joiner):
        match = re.match(r"^\s*(\w+)\s*(!=|=)\s*(.*?)\s*$", clause)
        assert match, f"unsupported visibleRule clause {clause!r}"
        value = values.get(match[1], "")
        if EXPRESSION.search(value):
            return None
        outcomes.append((value == match[3]) == (match[2] == "="))
    return any(outcomes) if joiner == "||" else all(outcomes)


def problems_of_step(step: dict[str, Any]) -> list[str]:
    declared = declared_inputs()
    names = canonical_names()
    given = step_inputs(step.get("inputs", {}))
    problems = [f"unknown input {key!r}" for key in given if str(key).lower() not in names]
    values = {name: as_text(item.get("defaultValue", "")) for name, item in declared.items()}
    values.update({names[str(k).lower()]: as_text(v) for k, v in given.items() if str(k).lower() in names})
    for name, item in declared.items():
        if not item.get("required") or visible(item.get("visibleRule"), values) is not True:
            continue
        if not values.get(name, "").strip():
            problems.append(f"required input {name!r} is missing")
    for name, value in values.items():
        options = declared[name].get("options")
        editable = declared[name].get("properties", {}).get("EditableOptions") == "True"
        if options and not editable and value and not EXPRESSION.search(value) and value not in options:
            problems.append(f"{name}: {value!r} is not one of {sorted(options)}")
    return problems


def template_parameters(path: Path) -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {p["name"]: p for p in document.get("parameters", [])}


def test_there_are_pipelines_and_examples() -> None:
    names = {p.relative_to(PIPELINES).as_posix() for p in YAML_FILES}
    assert {"azure-pipelines.yml", "templates/flux-bootstrap.yml"} <= names
    assert len([n for n in names if n.startswith("examples/")]) >= 4
    assert (PIPELINES / "examples" / "classic-release.md").is_file()


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_every_pipeline_parses(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and document


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_flux_steps_use_declared_inputs_and_give_the_required_ones(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    problems = [f"step {i}: {p}" for i, step in enumerate(flux_steps(document)) for p in problems_of_step(step)]
    assert problems == []


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_templates_are_called_with_the_parameters_they_declare(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for node in walk(document):
        reference = node.get("template")
        if not isinstance(reference, str):
            continue
        template = (path.parent / reference).resolve()
        assert template.is_file(), f"{reference} does not exist next to {path.name}"
        declared = template_parameters(template)
        given = node.get("parameters") or {}
        assert set(given) <= set(declared), f"{reference}: unknown parameters {set(given) - set(declared)}"
        missing = [n for n, p in declared.items() if "default" not in p and n not in given]
        assert missing == [], f"{reference}: missing parameters {missing}"
        for name, value in given.items():
            allowed = declared[name].get("values")
            if allowed and isinstance(value, str) and not EXPRESSION.search(value):
                assert value in allowed, f"{reference}: {name}={value!r} not in {allowed}"


def test_the_examples_cover_each_way_of_authenticating() -> None:
    seen: set[tuple[str, str]] = set()
    for path in YAML_FILES:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for step in flux_steps(document):
            given = step_inputs(step.get("inputs", {}))
            seen.add(("connectionType", as_text(given.get("connectionType", "kubernetesServiceConnection"))))
            seen.add(("clusterAuth", as_text(given.get("clusterAuth", "pat"))))
        for node in walk(document):
            if isinstance(node.get("template"), str) and isinstance(node.get("parameters"), dict):
                seen.add(("connectionType", as_text(node["parameters"].get("connectionType", ""))))
    for expected in ("kubernetesServiceConnection", "azureResourceManager", "kubeconfigFile"):
        assert ("connectionType", expected) in seen
    for expected in ("pat", "sshKey", "workloadIdentity"):
        assert ("clusterAuth", expected) in seen


def test_the_checker_catches_mistakes() -> None:
    assert problems_of_step({"task": "FluxBootstrap@1", "inputs": {"repositoryUrl": "fleet", "clusterPat": "x"}}) == [
        "required input 'kubernetesServiceConnection' is missing"
    ]
    assert "unknown input 'repository'" in problems_of_step({"task": "FluxBootstrap@1", "inputs": {"repository": "x"}})
    wrong = problems_of_step(
        {
            "task": "FluxBootstrap@1",
            "inputs": {"kubernetesServiceEndpoint": "k", "repositoryUrl": "r", "clusterAuth": "ssh", "action": "check"},
        }
    )
    assert wrong == ["clusterAuth: 'ssh' is not one of ['pat', 'sshKey', 'workloadIdentity']"]
    uninstall = {"kubeconfig": "k", "connectionType": "kubeconfigFile", "repositoryUrl": "r", "action": "uninstall"}
    assert problems_of_step({"task": "FluxBootstrap@1", "inputs": uninstall}) == []


IDENTIFIER = re.compile(r"^[A-Za-z0-9_]+$")
TEMPLATE_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
MACRO = re.compile(r"\$\(([A-Za-z0-9_.\-]+)\)")
PREDEFINED = ("Agent.", "Build.", "System.", "Pipeline.", "Release.", "Environment.", "Strategy.", "Resources.")


def declared_variables(document: Any) -> set[str]:
    """Names given a value in the file: `variables:` (list or mapping form, any level) and matrix legs."""
    names: set[str] = set()
    for node in walk(document):
        variables = node.get("variables")
        if isinstance(variables, dict):
            names.update(str(k) for k in variables)
        elif isinstance(variables, list):
            names.update(str(v["name"]) for v in variables if isinstance(v, dict) and "name" in v)
        matrix = node.get("matrix")
        if isinstance(matrix, dict):
            for leg in matrix.values():
                if isinstance(leg, dict):
                    names.update(str(k) for k in leg)
    return names


def step_names(document: Any) -> set[str]:
    """`name:` of steps (their output variables are `$(<name>.<output>)`), with the template's default step name."""
    names = {
        str(n["name"]) for n in walk(document) if isinstance(n.get("name"), str) and ("task" in n or "script" in n)
    }
    for node in walk(document):
        if isinstance(node.get("template"), str):
            names.add(str((node.get("parameters") or {}).get("stepName", "flux")))
    return names


def comment_text(path: Path) -> str:
    return "\n".join(line.split("#", 1)[1] for line in path.read_text(encoding="utf-8").splitlines() if "#" in line)


def macro_problems(path: Path) -> list[str]:
    """`$(name)` references that the file neither defines nor documents (in a comment) as a pipeline variable."""
    text = path.read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    defined, steps, comments = declared_variables(document), step_names(document), comment_text(path)
    problems = []
    for name in sorted(set(MACRO.findall(text))):
        if name in defined or name.startswith(PREDEFINED) or name.split(".")[0] in steps:
            continue
        if not re.search(rf"\b{re.escape(name)}\b", comments):
            problems.append(f"$({name}) is neither defined in the file nor documented in its comments")
    return problems


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_stage_and_job_names_are_identifiers(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    for node in walk(document):
        for key in ("stage", "job", "deployment"):
            value = node.get(key)
            if isinstance(value, str):
                name = TEMPLATE_EXPRESSION.sub("x", value)
                assert IDENTIFIER.match(name), f"{key} {value!r}: only letters, digits and _ are allowed"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_parameters_used_are_declared(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    declared = {p["name"] for p in (yaml.safe_load(text).get("parameters") or [])}
    used = set(re.findall(r"\bparameters\.([A-Za-z_][A-Za-z0-9_]*)", "\n".join(TEMPLATE_EXPRESSION.findall(text))))
    assert used <= declared, f"undeclared parameters {sorted(used - declared)}"


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_variables_used_are_defined_or_documented(path: Path) -> None:
    assert macro_problems(path) == []


def test_the_variable_checker_catches_an_undefined_variable(tmp_path: Path) -> None:
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(
        "# documented: the secret variable fluxPullPat\nvariables:\n  - name: here\n    value: x\nsteps:\n"
        "  - script: echo $(here) $(fluxPullPat) $(Build.BuildId) $(flux.result) $(tenantId)\n    name: flux\n",
        encoding="utf-8",
    )
    assert macro_problems(pipeline) == ["$(tenantId) is neither defined in the file nor documented in its comments"]


CONDITION_VARIABLE = re.compile(r"variables\['([A-Za-z0-9_.]+)'\]")
#: Each switch of the end-to-end stage: the runtime parameter (one manual run) and the UI variable (every run).
E2E_SWITCHES = {"e2e": "e2eEnabled", "e2eInstalledTask": "e2eInstalledTaskEnabled"}


def test_the_ci_switches_are_runtime_parameters_or_ui_variables_never_declared_in_the_file() -> None:
    """A variable defined in the YAML always wins over one set in the UI, so the switches that the UI (or a schedule)
    sets are never declared in the file; runtime parameters switch one manual run on. Both are read by `condition:`
    at run time (no `${{ if }}` drops the stage), so CI-triggered and scheduled runs can enable the stage too."""
    path = PIPELINES / "azure-pipelines.yml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    parameters = {p["name"]: p for p in document["parameters"]}
    for name in E2E_SWITCHES:
        assert parameters[name]["type"] == "boolean" and parameters[name]["default"] is False
    assert not [v for v in declared_variables(document) if v.startswith("e2e")]
    inserted = [k for stage in document["stages"] if isinstance(stage, dict) for k in stage if k.startswith("${{")]
    assert inserted == []
    (stage,) = [s for s in document["stages"] if isinstance(s, dict) and s.get("stage") == "e2e"]
    (installed,) = [j for j in stage["jobs"] if j.get("job") == "installed_task"]
    for node, parameter in ((stage, "e2e"), (installed, "e2eInstalledTask")):
        condition = node["condition"].replace(" ", "")
        assert condition.startswith("and(succeeded(),or("), condition
        assert f"eq('${{{{parameters.{parameter}}}}}','true')" in condition
        assert f"eq(variables['{E2E_SWITCHES[parameter]}'],'true')" in condition
    comments = comment_text(path)
    for variable in E2E_SWITCHES.values():
        assert re.search(rf"\b{variable}\b", comments), f"{variable} is not documented in the file's comments"


def test_variables_in_conditions_are_documented() -> None:
    """`variables['name']` in a condition, like `$(name)`, is either defined in the file, predefined, or documented."""
    for path in YAML_FILES:
        text = path.read_text(encoding="utf-8")
        defined, comments = declared_variables(yaml.safe_load(text)), comment_text(path)
        for name in set(CONDITION_VARIABLE.findall(text)):
            if name in defined or name.lower().startswith(tuple(p.lower() for p in PREDEFINED)):
                continue
            assert re.search(rf"\b{re.escape(name)}\b", comments), f"{path.name}: variables[{name!r}] undocumented"


def test_ci_checks_the_packaged_task_under_every_python_it_ships() -> None:
    document = yaml.safe_load((PIPELINES / "azure-pipelines.yml").read_text(encoding="utf-8"))
    stage_source = (REPO / "task" / "stage.py").read_text(encoding="utf-8")
    match = re.search(r"^RELEASE_PYTHONS = \((.*)\)$", stage_source, re.M)
    assert match
    shipped = re.findall(r'"(3\.\d+)"', match[1])
    (packaged,) = [s for s in document["stages"] if isinstance(s, dict) and s.get("stage") == "packaged"]
    (job,) = packaged["jobs"]
    legs = job["strategy"]["matrix"].values()
    assert sorted(leg["checkPython"] for leg in legs) == shipped
    scripts = [step["script"] for step in job["steps"] if "script" in step]
    assert any("task/check_package.py" in script and ".vsix" in script for script in scripts)
    assert (REPO / "task" / "check_package.py").is_file()
