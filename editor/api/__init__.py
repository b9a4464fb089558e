"""The developer API (/api/v1/): personal API keys, idempotent edit creation, users' webhooks. docs/api.md."""
