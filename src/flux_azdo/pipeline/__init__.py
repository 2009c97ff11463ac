"""The task side of flux-azdo: what runs inside an Azure Pipelines job (the `FluxBootstrap@1` task).

The agent reads the task's standard output line by line and treats some lines as commands (`##vso[...]`) or
formatting (`##[group]`); everything here exists so that our lines are exactly those we mean and no others:
`commands` writes and escapes logging commands and defuses untrusted text, `masking` registers every secret (and
the forms it takes on the wire) with the agent before it can be printed, `reporter` turns the bootstrap events
into groups, progress, issues and output variables, and `summary` builds the Markdown the run page shows.
The modules that read the agent's inputs and run an action live next to these.
"""
