"""task.json against the rules the agent, the server and tfx apply, and against the inputs the Python side reads.

The schema below is written from those rules (task-lib's schema fields, tfx's `jsonvalidate` checks); the other
tests check what no schema can: visible rules that name real inputs and options, groups, pick-list defaults, the
contract of input names/types/defaults that flux_azdo.pipeline.inputs relies on, and the extension's version.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import flux_azdo
from support.task import REPO, TASK_SOURCE, task_definition

NAME = r"^[A-Za-z][A-Za-z0-9]*$"
HANDLERS = ["Node24", "Node20_1", "Node16", "Node10", "Node", "PowerShell3", "PowerShell", "Process"]
INPUT_TYPES = [
    "boolean", "filePath", "multiLine", "pickList", "radio", "secureFile", "string", "int", "identities",
    "querycontrol",
]  # fmt: skip
INPUT_PROPERTIES = [
    "EditableOptions", "MultiSelect", "MultiSelectFlatList", "DisableManageLink", "IsSearchable",
    "PopulateDefaultValue", "isVariableOrNonNegativeNumber", "resizable", "rows", "maxLength", "editorExtension",
    "EndpointFilterRule",
]  # fmt: skip

# fmt: off
TASK_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "name", "friendlyName", "description", "author", "category", "version", "instanceNameFormat",
                 "inputs", "execution"],
    "properties": {
        "$schema": {"type": "string"},
        "id": {"type": "string", "pattern": r"^[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}$"},
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9\-]+$"},
        "friendlyName": {"type": "string", "minLength": 1, "maxLength": 40},
        "description": {"type": "string", "minLength": 1},
        "helpUrl": {"type": "string", "pattern": "^https://"},
        "helpMarkDown": {"type": "string"},
        "author": {"type": "string", "minLength": 1},
        "preview": {"type": "boolean"},
        "deprecated": {"type": "boolean"},
        "removalDate": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "deprecationMessage": {"type": "string"},
        "showEnvironmentVariables": {"type": "boolean"},
        "runsOn": {"type": "array", "uniqueItems": True, "minItems": 1,
                   "items": {"enum": ["Agent", "MachineGroup", "Server", "ServerGate", "DeploymentGroup"]}},
        "visibility": {"type": "array", "uniqueItems": True, "items": {"enum": ["Build", "Release"]}},
        "category": {"enum": ["Build", "Utility", "Test", "Package", "Deploy", "Azure Repos", "Azure Boards",
                              "Azure Pipelines", "Azure Test Plans", "Azure Artifacts"]},
        "groups": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "displayName"],
            "properties": {"name": {"type": "string", "pattern": NAME}, "displayName": {"type": "string"},
                           "isExpanded": {"type": "boolean"}, "visibleRule": {"type": "string"}}}},
        "demands": {"type": "array", "items": {"type": "string"}},
        "minimumAgentVersion": {"type": "string", "pattern": r"^\d+\.\d+(\.\d+)?$"},
        "version": {"type": "object", "additionalProperties": False, "required": ["Major", "Minor", "Patch"],
                    "properties": {k: {"type": "integer", "minimum": 0} for k in ("Major", "Minor", "Patch")}},
        "instanceNameFormat": {"type": "string", "minLength": 1},
        "releaseNotes": {"type": "string"},
        "inputs": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "label", "type"],
            "properties": {
                "name": {"type": "string", "pattern": NAME},
                "aliases": {"type": "array", "items": {"type": "string", "pattern": NAME}},
                "label": {"type": "string", "minLength": 1},
                "type": {"anyOf": [{"enum": INPUT_TYPES}, {"type": "string", "pattern": r"^connectedService:.+$"}]},
                "defaultValue": {"type": ["string", "boolean"]},
                "required": {"type": "boolean"},
                "helpMarkDown": {"type": "string"},
                "groupName": {"type": "string"},
                "visibleRule": {"type": "string"},
                "properties": {"type": "object", "propertyNames": {"enum": INPUT_PROPERTIES},
                               "additionalProperties": {"type": ["string", "boolean"]}},
                "options": {"type": "object", "additionalProperties": {"type": "string"}},
                "validation": {"type": "object", "required": ["expression", "message"],
                               "properties": {"expression": {"type": "string"}, "message": {"type": "string"}}},
            }}},
        "dataSourceBindings": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["target"],
            "properties": {k: {"type": ["string", "object"]} for k in (
                "target", "endpointId", "dataSourceName", "parameters", "resultTemplate", "endpointUrl",
                "resultSelector", "RequestVerb", "requestContent", "callbackContextTemplate",
                "callbackRequiredTemplate", "initialContextTemplate")}}},
        "sourceDefinitions": {"type": "array"},
        "prejobexecution": {"$ref": "#/definitions/execution"},
        "execution": {"$ref": "#/definitions/execution"},
        "postjobexecution": {"$ref": "#/definitions/execution"},
        "messages": {"type": "object", "additionalProperties": {"type": "string"}},
        "outputVariables": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": NAME}, "description": {"type": "string"}}}},
        "restrictions": {"type": "object"},
    },
    "definitions": {
        "execution": {"type": "object", "minProperties": 1, "propertyNames": {"enum": HANDLERS},
                      "additionalProperties": {
                          "type": "object", "additionalProperties": False, "required": ["target"],
                          "properties": {"target": {"type": "string", "minLength": 1},
                                         "platforms": {"type": "array", "items": {"enum": ["windows"]}},
                                         "argumentFormat": {"type": "string"},
                                         "workingDirectory": {"type": "string"}}}},
    },
}
# fmt: on

# What flux_azdo.pipeline reads: name -> (type, group, default). None: no default declared.
CONTRACT: dict[str, tuple[str, str | None, str | None]] = {
    "action": ("pickList", None, "bootstrap"),
    "connectionType": ("pickList", "cluster", "kubernetesServiceConnection"),
    "kubernetesServiceConnection": ("connectedService:kubernetes", "cluster", None),
    "azureSubscription": ("connectedService:AzureRM", "cluster", None),
    "azureResourceGroup": ("pickList", "cluster", ""),
    "kubernetesCluster": ("pickList", "cluster", ""),
    "useClusterAdmin": ("boolean", "cluster", "false"),
    "kubeconfig": ("filePath", "cluster", ""),
    "kubeContext": ("string", "cluster", ""),
    "repositoryUrl": ("string", "repository", None),
    "branch": ("string", "repository", "main"),
    "path": ("string", "repository", ""),
    "createRepository": ("boolean", "repository", "false"),
    "createBranch": ("boolean", "repository", "false"),
    "allowInsecureHttp": ("boolean", "repository", "false"),
    "gitAuth": ("pickList", "gitAccess", "jobToken"),
    "gitPat": ("string", "gitAccess", ""),
    "clusterAuth": ("pickList", "clusterCredential", "pat"),
    "clusterPat": ("string", "clusterCredential", ""),
    "sshKey": ("secureFile", "clusterCredential", None),
    "sshKeyPassphrase": ("string", "clusterCredential", ""),
    "sshRepositoryUrl": ("string", "clusterCredential", ""),
    "sshKnownHosts": ("multiLine", "clusterCredential", ""),
    "sshHostKeyAlgorithms": ("string", "clusterCredential", ""),
    "workloadIdentityClientId": ("string", "clusterCredential", ""),
    "workloadIdentityTenantId": ("string", "clusterCredential", ""),
    "fluxVersion": ("string", "flux", ""),
    "manifests": ("string", "flux", ""),
    "components": ("string", "flux", "source-controller,kustomize-controller,helm-controller,notification-controller"),
    "componentsExtra": ("string", "flux", ""),
    "registry": ("string", "flux", "ghcr.io/fluxcd"),
    "imagePullSecret": ("string", "flux", ""),
    "registryCredentials": ("string", "flux", ""),
    "networkPolicy": ("boolean", "flux", "true"),
    "watchAllNamespaces": ("boolean", "flux", "true"),
    "logLevel": ("pickList", "flux", "info"),
    "tolerationKeys": ("string", "flux", ""),
    "clusterDomain": ("string", "flux", "cluster.local"),
    "interval": ("string", "flux", "1m0s"),
    "name": ("string", "flux", ""),
    "namespace": ("string", "flux", "flux-system"),
    "secretName": ("string", "flux", ""),
    "commitMessageAppendix": ("string", "flux", ""),
    "authorName": ("string", "flux", "Flux"),
    "authorEmail": ("string", "flux", ""),
    "timeout": ("string", "flux", "5m0s"),
    "force": ("boolean", "flux", "false"),
    "keepCrds": ("boolean", "flux", "false"),
    "keepNamespace": ("boolean", "flux", "false"),
    "removeManifests": ("boolean", "flux", "false"),
    "pythonPath": ("string", "advanced", ""),
}
PICK_LISTS = {
    "action": {"bootstrap", "plan", "check", "uninstall", "rotateCredentials"},
    "connectionType": {"kubernetesServiceConnection", "azureResourceManager", "kubeconfigFile"},
    "gitAuth": {"jobToken", "pat"},
    "clusterAuth": {"pat", "sshKey", "workloadIdentity"},
    "logLevel": {"info", "debug", "error"},
}
VISIBLE = {
    "kubernetesServiceConnection": "connectionType = kubernetesServiceConnection",
    "azureSubscription": "connectionType = azureResourceManager",
    "azureResourceGroup": "connectionType = azureResourceManager",
    "kubernetesCluster": "connectionType = azureResourceManager",
    "useClusterAdmin": "connectionType = azureResourceManager",
    "kubeconfig": "connectionType = kubeconfigFile",
    "kubeContext": "connectionType = kubeconfigFile",  # a service connection names its own context
    "gitPat": "gitAuth = pat",
    # check and uninstall store no cluster credential: the classic editor does not ask for one.
    "clusterPat": "clusterAuth = pat && action != check && action != uninstall",
    "sshKey": "clusterAuth = sshKey && action != check && action != uninstall",
    "sshKeyPassphrase": "clusterAuth = sshKey",
    "sshRepositoryUrl": "clusterAuth = sshKey",
    "sshKnownHosts": "clusterAuth = sshKey",
    "sshHostKeyAlgorithms": "clusterAuth = sshKey",
    "workloadIdentityClientId": "clusterAuth = workloadIdentity",
    "workloadIdentityTenantId": "clusterAuth = workloadIdentity",
}
OUTPUTS = ["fluxVersion", "componentsCommit", "syncCommit", "repositoryUrl", "result"]
RULE_CLAUSE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*(=|!=|NotEndsWith|EndsWith|NotContains|Contains)\s*(.*?)\s*$")


@pytest.fixture(scope="module")
def task() -> dict[str, Any]:
    return task_definition()


@pytest.fixture(scope="module")
def inputs(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in task["inputs"]}


def rule_clauses(rule: str) -> list[tuple[str, str, str]]:
    clauses = []
    for part in re.split(r"&&|\|\|", rule):
        match = RULE_CLAUSE.match(part)
        assert match, f"visibleRule clause {part!r} is not `<input> <operator> <value>`"
        clauses.append((match[1], match[2], match[3]))
    return clauses


def test_task_json_matches_the_schema(task: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(TASK_SCHEMA)
    errors = sorted(jsonschema.Draft7Validator(TASK_SCHEMA).iter_errors(task), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_rejects_what_tfx_and_the_agent_reject(task: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(TASK_SCHEMA)
    broken: list[dict[str, Any]] = [
        {**task, "id": "not-a-guid"},
        {**task, "name": "Flux Bootstrap"},
        {**task, "friendlyName": "x" * 41},
        {k: v for k, v in task.items() if k != "instanceNameFormat"},
        {**task, "inputs": [*task["inputs"], {"name": "bad_name", "label": "x", "type": "string"}]},
        {**task, "inputs": [*task["inputs"], {"name": "x", "label": "x", "type": "password"}]},
        {**task, "execution": {"Python3": {"target": "task_entry.py"}}},
        {**task, "unknownField": True},
    ]
    for document in broken:
        assert list(validator.iter_errors(document)), document.keys()


def test_identity_and_where_the_task_appears(task: dict[str, Any]) -> None:
    assert task["id"] == "fd82ee83-d18e-404c-a0e9-39f2f600697b"  # never changes: classic pipelines store it
    assert task["name"] == "FluxBootstrap"
    assert task["category"] == "Deploy"
    assert task["visibility"] == ["Build", "Release"]
    assert task["runsOn"] == ["Agent", "DeploymentGroup"]
    assert task["version"]["Major"] == 1  # FluxBootstrap@1: a new major is a new task folder (FluxBootstrapV2)
    assert tuple(int(p) for p in task["minimumAgentVersion"].split(".")) >= (4, 248, 0)  # Node20_1


def test_both_node_handlers_run_the_launcher(task: dict[str, Any]) -> None:
    assert set(task["execution"]) == {"Node20_1", "Node24"}
    for handler in task["execution"].values():
        assert handler["target"] == "launcher.js"
        assert (TASK_SOURCE / handler["target"]).is_file()  # tfx refuses a missing target


def test_every_input_of_the_contract_is_declared_as_agreed(inputs: dict[str, dict[str, Any]]) -> None:
    assert list(inputs) == list(CONTRACT)
    for name, (kind, group, default) in CONTRACT.items():
        item = inputs[name]
        assert item["type"] == kind, name
        assert item.get("groupName") == group, name
        assert item.get("defaultValue") == default, name
        assert item.get("helpMarkDown", "").strip(), f"{name} has no helpMarkDown"
    assert inputs["kubernetesServiceConnection"]["aliases"] == ["kubernetesServiceEndpoint"]
    # The spellings KubernetesManifest@1 accepts for its two connections (kubernetesServiceEndpoint with alias
    # kubernetesServiceConnection, azureSubscriptionEndpoint with alias azureSubscriptionConnection).
    assert inputs["azureSubscription"]["aliases"] == ["azureSubscriptionConnection", "azureSubscriptionEndpoint"]
    assert inputs["kubeContext"]["visibleRule"] == "connectionType = kubeconfigFile"
    assert inputs["repositoryUrl"]["required"] is True
    for name in ("azureResourceGroup", "kubernetesCluster"):
        assert inputs[name]["properties"] == {"EditableOptions": "True"}


def test_input_names_and_aliases_are_unique(inputs: dict[str, dict[str, Any]]) -> None:
    names = [n.lower() for item in inputs.values() for n in (item["name"], *item.get("aliases", []))]
    assert len(names) == len(set(names))


def test_pick_lists_offer_the_agreed_values_and_default_to_one_of_them(inputs: dict[str, dict[str, Any]]) -> None:
    for name, item in inputs.items():
        if item["type"] != "pickList" or item.get("properties", {}).get("EditableOptions") == "True":
            continue
        assert set(item["options"]) == PICK_LISTS[name], name
        assert item["defaultValue"] in item["options"], name


def test_visible_rules_name_declared_inputs_and_their_values(inputs: dict[str, dict[str, Any]]) -> None:
    for name, item in inputs.items():
        rule = item.get("visibleRule")
        if rule is None:
            continue
        assert not ("&&" in rule and "||" in rule), f"{name}: the editor evaluates only one kind of joiner"
        for target, operator, value in rule_clauses(rule):
            assert target in inputs and target != name, f"{name}: {rule} names {target}"
            referenced = inputs[target]
            if referenced["type"] == "boolean" and operator in ("=", "!="):
                assert value in ("true", "false"), f"{name}: {rule}"
            elif "options" in referenced and operator in ("=", "!="):
                assert value in referenced["options"], f"{name}: {rule} uses {value!r}, not an option of {target}"
    for name, rule in VISIBLE.items():
        assert inputs[name]["visibleRule"] == rule, name
    for name in ("keepCrds", "keepNamespace", "removeManifests"):
        assert inputs[name]["visibleRule"] == "action = uninstall"


def test_groups_used_exist_and_every_group_is_used(task: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> None:
    groups = {g["name"]: g["displayName"] for g in task["groups"]}
    used = {item["groupName"] for item in inputs.values() if "groupName" in item}
    assert used == set(groups)
    assert groups["cluster"] == "Cluster connection"
    assert groups["repository"] == "Repository"
    assert groups["gitAccess"] == "Git access for the push"
    assert groups["clusterCredential"] == "The cluster's Git credential"


def test_data_sources_feed_the_aks_pick_lists_from_the_subscription(
    task: dict[str, Any], inputs: dict[str, dict[str, Any]]
) -> None:
    bindings = {b["target"]: b for b in task["dataSourceBindings"]}
    assert set(bindings) == {"azureResourceGroup", "kubernetesCluster"}
    for binding in bindings.values():
        assert binding["endpointId"] == "$(azureSubscription)"
        assert binding["endpointUrl"].startswith("{{{endpoint.url}}}/subscriptions/{{{endpoint.subscriptionId}}}/")
        assert "Microsoft.ContainerService/managedClusters?api-version=" in binding["endpointUrl"]
        for macro in re.findall(r"\$\((\w+)\)", binding["endpointUrl"]):
            assert macro in inputs
    assert "$(azureResourceGroup)" in bindings["kubernetesCluster"]["endpointUrl"]


def test_instance_name_and_outputs(task: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> None:
    assert task["instanceNameFormat"] == "Flux $(action) $(repositoryUrl)"
    for macro in re.findall(r"\$\((\w+)\)", task["instanceNameFormat"]):
        assert macro in inputs
    assert [o["name"] for o in task["outputVariables"]] == OUTPUTS
    assert all(o["description"] for o in task["outputVariables"])


def test_the_extension_ships_this_task_version() -> None:
    manifest = json.loads((REPO / "vss-extension.json").read_text(encoding="utf-8"))
    version = task_definition()["version"]
    assert isinstance(version, dict)
    assert manifest["version"] == f"{version['Major']}.{version['Minor']}.{version['Patch']}"
    contribution = manifest["contributions"][0]
    assert contribution["type"] == "ms.vss-distributed-task.task"
    assert (Path(contribution["properties"]["name"]) / "task.json").as_posix() == "FluxBootstrapV1/task.json"
    assert len(manifest["description"]) <= 200


def test_the_package_the_task_and_the_extension_carry_one_version() -> None:
    """`flux-azdo --version` in a pipeline's log, the task's version and the Marketplace listing's agree."""
    manifest = json.loads((REPO / "vss-extension.json").read_text(encoding="utf-8"))
    task_version = task_definition()["version"]
    assert isinstance(task_version, dict)
    dotted = f"{task_version['Major']}.{task_version['Minor']}.{task_version['Patch']}"
    assert flux_azdo.__version__ == dotted == manifest["version"]


def test_the_help_names_the_pythons_the_package_carries_and_git(task: dict[str, Any]) -> None:
    """The documented range starts at the oldest CPython task/stage.py ships (its RELEASE_PYTHONS)."""
    stage_source = (REPO / "task" / "stage.py").read_text(encoding="utf-8")
    match = re.search(r"^RELEASE_PYTHONS = \((.*)\)$", stage_source, re.M)
    assert match
    versions = re.findall(r'"(3\.\d+)"', match[1])
    expected = f"CPython {versions[0]} to {versions[-1]}"
    pythons = next(item for item in task["inputs"] if item["name"] == "pythonPath")
    for text in (task["helpMarkDown"], pythons["helpMarkDown"]):
        assert expected in text
    assert "`git` on PATH" in task["helpMarkDown"]
    assert task["helpUrl"].startswith("https://marketplace.visualstudio.com/items?itemName=")
    for document in ("overview.md", "pipelines/examples/classic-release.md"):
        text = " ".join((REPO / document).read_text(encoding="utf-8").split())
        assert expected in text, document
        assert not re.search(r"3\.11 (to|or newer)", text), document
