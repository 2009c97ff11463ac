"""The steps `flux_azdo.bootstrap` sequences, grouped by what they talk to.

`checks` (the preflight and `--create-repo`), `repository` (the distribution, the checkout, the two commits and
pushes), `install` (components, source secret, sync manifests into the cluster), `health` (the waits and the
health report), `credentials` (what the cluster stores). Each reports through the `Reporter` it is given and
raises `UserError`; none decides what runs next.
"""
