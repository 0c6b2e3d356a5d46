"""The only modules that talk to AWS: DynamoDB and Secrets Manager adapters behind keygate.ports.

- `aws`: the lazily created clients and the one translation of AWS faults;
- `layout`: every partition/sort key and item shape (docs/architecture.md, "Data model");
- `dynamodb`: the key lifecycle's repository (records, audit, step-up uses, cleanup outbox);
- `lookup`: the signature authorizer's reads and writes (pointer, record, nonces, last use);
- `secrets`: the Secrets Manager vault.
"""
