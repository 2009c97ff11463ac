"""flux-azdo: bootstrap Flux on AKS with an Azure DevOps Git repository as the source of truth.

The package is split the way Flux splits its own CLI: pure generators (`manifests`),
thin clients at the edges (`registry`, and later `azdo`, `git`, `cluster`), and the
command line (`cli`). Importing this package stays cheap so `flux-azdo --help` is instant.
"""

__version__ = "0.1.0"
