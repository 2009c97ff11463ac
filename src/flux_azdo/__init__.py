"""flux-azdo: bootstrap Flux on AKS with an Azure DevOps Git repository as the source of truth.

The package is split the way Flux splits its own CLI: pure generators (`manifests`), thin clients at the
edges (`registry`, `azdo`, `git`, `cluster`), orchestrators that only sequence them (`bootstrap`, `plan`,
`uninstall`, `rotate`), and two front ends: the command line (`cli`) and the Azure Pipelines task
(`pipeline`). Importing this package stays cheap so `flux-azdo --help` and the task's first line are instant.
`__version__` is also the version of the task and of the Marketplace extension (a test keeps them equal).
"""

__version__ = "1.0.0"
