"""KeyGate's shared domain package (the `common` Lambda layer).

One module per concern: `config` (validated environment), `errors` (typed
exceptions), `api` (event parsing and the single error-to-HTTP mapping),
`keys` (id and secret format), `models` (pydantic input, output and records),
`auth` (session and step-up tokens), `store` (every DynamoDB and Secrets
Manager call), `service` (the lifecycle operations), `observability`.
"""
