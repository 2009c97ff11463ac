"""Azure DevOps: repository URLs, the REST client (through the `azure-devops` SDK) and the permission preflight."""
