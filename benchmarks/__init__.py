"""KeyGate benchmarks: figures, not timed tests (issue 5).

`python -m benchmarks.run` runs them all, prints one table and writes
benchmarks/results/benchmarks.json; `--quick` is the short smoke run CI uses.
Everything runs on this machine: moto stands in for DynamoDB and Secrets
Manager, the local identity provider for the JWKS.
"""
