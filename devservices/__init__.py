"""Throwaway real services on free loopback ports, for the test suite, scripts/ and bench/ (no pytest here).

- `devservices.servers`: Redis, SeaweedFS (S3) and PostgreSQL, each in a private temporary folder.
- `devservices.fashionai`: the self-hosted Fashion AI service (`python -m fashionai serve`) as a subprocess.
- `devservices.celery_worker`: a real `celery -A fashionsite worker` subprocess with test-sized timings.
- `devservices.caddy`: the deployment's proxy (docker/Caddyfile) in front of a given upstream.
- `devservices.tcpproxy`: a loopback TCP proxy that can be cut and restored (fault injection).
- `devservices.net`: free ports, "does it answer", wait for a condition.

The pytest fixtures that wrap these live in tests/support/fixtures.py.
"""
