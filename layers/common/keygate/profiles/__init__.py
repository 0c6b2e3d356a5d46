"""The wire profiles KeyGate serves: each the request/response models, mapping and routes of one exchange doc.

- `gaiaex`: routes under /v1/trade/api-keys, snake_case (GaiaEx's "API Key Creation & Management");
- `zdex`: routes under /v1/api-keys, camelCase, `ok` on every answer (ZDEX's "API Keys").

The domain (keygate.service) knows neither: a profile maps its bodies to the
domain's requests and the domain's results to its responses.
"""
