"""Helpers shared by the tests (and the benchmarks); conftest files hold fixtures only.

- `stack`: the stack under test (table, region, stage, parameters), its composition root, what it stores;
- `client`: the API through the one local gateway; `apigw_events`: API Gateway's events for direct calls;
- `bots`: SDK-signed requests as REQUEST authorizer events, and the authorizer's answer as API Gateway reads it;
- `memory`: the storage ports in memory, held to the DynamoDB adapters (tests/integration/test_lifecycle_ports.py);
- `clocks`, `logs`, `errors` (the error shape), `faults` (AWS faults, atomic moto, races), `invariants`;
- `loopback`: a throwaway JSON API on 127.0.0.1; `local_server`: `keygate dev serve` for the e2e tests, and the
  app's user calling it (`AppUser`);
- `conformance`: the published exchange docs' examples (tests/e2e/fixtures/conformance), replayed and checked.
"""
