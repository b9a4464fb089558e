"""Static files storage for production: whitenoise's compressed, hashed files, without source-map rewriting.

Django rewrites `sourceMappingURL` comments to hashed names and fails collectstatic when the .map file is absent,
which is how vendored minified libraries usually ship (e.g. static/vendor/chartjs). Source maps are a developer
aid we do not serve, so the comment is left as it is; browsers ask for the map only with developer tools open.
"""
from __future__ import annotations

from typing import Any

from whitenoise.storage import CompressedManifestStaticFilesStorage


def _without_source_maps(patterns: Any) -> tuple[Any, ...]:
    def keeps(pattern: Any) -> bool:
        return "sourceMappingURL" not in (pattern if isinstance(pattern, str) else pattern[0])

    return tuple((extension, tuple(p for p in rules if keeps(p))) for extension, rules in patterns)


class ProductionStaticFilesStorage(CompressedManifestStaticFilesStorage):
    patterns = _without_source_maps(CompressedManifestStaticFilesStorage.patterns)
