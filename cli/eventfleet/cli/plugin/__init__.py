"""`kubectl eventfleet`: the kubectl plugin (an executable `kubectl-eventfleet` on the PATH).

- `view`: what `status` prints, from what was read; pure.
- `redact`: credentials out of text before it leaves the cluster in a report; pure.
- `cluster`: the reads and patches against the API server, with the user's own RBAC.
- `report`: the bug-report tarball.
- `main`: the command line.
"""
