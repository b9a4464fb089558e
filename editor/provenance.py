"""Provenance of edit results: a C2PA manifest that says the image was edited by AI (which provider and engine, when),
signed with the operator's key and embedded in the stored result, so anyone can check it with a C2PA reader (EU AI
Act Article 50 expects AI-edited images to be marked in a machine-readable way).

Why the site signs, and only after `images.clean_result`: the site never stores the provider's bytes, it re-encodes
the result from its pixels (docs/security.md), and a re-encode drops any manifest the provider embedded. So the
manifest is made here, on the bytes exactly as they are stored; nothing re-encodes them afterwards (downloads serve
the stored object as it is, from S3 or local files). It also works the same with Segmind's cloud as the provider, and
the signing key stays with the site rather than the engine.

The manifest: `c2pa.opened` of the person's photo (a `parentOf` ingredient, no thumbnail embedded), then
`c2pa.edited` with IPTC's digital source type "composite with trained algorithmic media", `when`, and the engine as
`softwareAgent`; plus our own assertion `org.fashion-ai-studio.edit` (provider, model, engine, clothing, whether the
visible mark was drawn). The prompt is not written into the file: it is the person's own words, and downloads travel.

c2pa-python (the Content Authenticity Initiative's library, MIT or Apache-2.0) signs and verifies; `cryptography`
reads the key to pick the algorithm.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import c2pa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings

CLAIM_GENERATOR = "Fashion AI Studio"
# IPTC's term for "an edit that combines the original with content made by a trained model".
AI_EDIT_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
EDIT_ASSERTION = "org.fashion-ai-studio.edit"
MIME_BY_EXTENSION = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
_PARENT_LABEL = "photo"


class ProvenanceError(Exception):
    """The result could not be signed (key, certificate or library refused)."""


@dataclass(frozen=True)
class EditFacts:
    """What the manifest states about one edit."""

    provider: str  # "Segmind cloud" or "self-hosted Fashion AI service"
    model: str  # the provider's model slug
    engine: str  # the provider's engine, when it says ("recolor"); else the model
    clothing: str
    when: datetime
    visible_mark: bool = False


@dataclass(frozen=True)
class Verification:
    """What a C2PA reader says about a file: `state` is None without a manifest, else "Invalid", "Valid" (signature
    and hashes check out) or "Trusted" (and the signer chains to a trust anchor we were given)."""

    state: str | None
    manifest: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def actions(self) -> list[dict[str, Any]]:
        for assertion in self.manifest.get("assertions", []):
            if str(assertion.get("label", "")).startswith("c2pa.actions"):
                return list(assertion.get("data", {}).get("actions", []))
        return []

    def assertion(self, label: str) -> dict[str, Any]:
        for assertion in self.manifest.get("assertions", []):
            if assertion.get("label") == label:
                return dict(assertion.get("data", {}))
        return {}


def signing_enabled() -> bool:
    return bool(settings.C2PA_SIGNING_KEY_FILE)


def provider_label() -> str:
    return "Segmind cloud" if "segmind.com" in settings.FASHION_AI_BASE_URL else "self-hosted Fashion AI service"


@lru_cache(maxsize=4)
def _credentials(key_file: str, certs_file: str, mtimes: tuple[float, float]) -> tuple[c2pa.C2paSigningAlg, str, str]:
    key_pem = Path(key_file).read_text()
    certs_pem = Path(certs_file).read_text()
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ProvenanceError(f"C2PA_SIGNING_KEY_FILE is not an unencrypted PEM private key: {exc}") from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": c2pa.C2paSigningAlg.ES256, "secp384r1": c2pa.C2paSigningAlg.ES384,
                "secp521r1": c2pa.C2paSigningAlg.ES512}
        if key.curve.name not in algs:
            raise ProvenanceError(f"C2PA signing needs a P-256, P-384 or P-521 key, not {key.curve.name}")
        alg = algs[key.curve.name]
    elif isinstance(key, rsa.RSAPrivateKey):
        alg = c2pa.C2paSigningAlg.PS256
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        alg = c2pa.C2paSigningAlg.ED25519
    else:
        raise ProvenanceError(f"C2PA signing does not support {type(key).__name__} keys")
    return alg, certs_pem, key_pem


def _signer() -> c2pa.Signer:
    key_file, certs_file = settings.C2PA_SIGNING_KEY_FILE, settings.C2PA_SIGNING_CERTS_FILE
    # Re-read when a file changes (a renewed certificate), without a restart.
    mtimes = (Path(key_file).stat().st_mtime, Path(certs_file).stat().st_mtime)
    alg, certs_pem, key_pem = _credentials(key_file, certs_file, mtimes)
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, certs_pem.encode(), key_pem.encode(), None))


def _manifest(facts: EditFacts, *, title: str) -> dict[str, Any]:
    agent = f"{facts.provider}: {facts.engine}" if facts.engine else facts.provider
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.opened", "parameters": {"ingredientIds": [_PARENT_LABEL]}},
                        {
                            "action": "c2pa.edited",
                            "when": facts.when.isoformat(),
                            "softwareAgent": {"name": agent},
                            "digitalSourceType": AI_EDIT_SOURCE_TYPE,
                            "description": f"The {facts.clothing} was edited by AI.",
                        },
                    ]
                },
            },
            {
                "label": EDIT_ASSERTION,
                "data": {
                    "edited_by_ai": True,
                    "provider": facts.provider,
                    "model": facts.model,
                    "engine": facts.engine,
                    "clothing": facts.clothing,
                    "visible_mark": facts.visible_mark,
                },
            },
        ],
    }


# Ingredient thumbnails off: the photo is the person's own, and the result already shows it.
_BUILD_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}


def sign_result(data: bytes, *, extension: str, parent: bytes, parent_mime: str, facts: EditFacts) -> bytes:
    """The stored result's bytes with a signed C2PA manifest embedded (same pixels, same format)."""
    mime = MIME_BY_EXTENSION[extension]
    try:
        context = c2pa.Context(settings=c2pa.Settings.from_dict(_BUILD_SETTINGS))
        builder = c2pa.Builder(_manifest(facts, title=f"edit{extension}"), context=context)
        builder.add_ingredient(
            {"title": "photo", "relationship": "parentOf", "label": _PARENT_LABEL}, parent_mime, io.BytesIO(parent)
        )
        out = io.BytesIO()
        builder.sign(_signer(), mime, io.BytesIO(data), out)
    except (c2pa.C2paError, OSError) as exc:
        raise ProvenanceError(f"{type(exc).__name__}: {exc}") from exc
    return out.getvalue()


def verify(data: bytes, *, mime: str | None = None, trust_anchors: str | None = None) -> Verification:
    """Read and validate the file's C2PA manifest. With trust anchors (PEM; default: C2PA_TRUST_ANCHORS_FILE) a
    signer chaining to one of them is "Trusted"."""
    if trust_anchors is None and settings.C2PA_TRUST_ANCHORS_FILE:
        trust_anchors = Path(settings.C2PA_TRUST_ANCHORS_FILE).read_text()
    context = None
    if trust_anchors:
        trust = {"trust": {"trust_anchors": trust_anchors}, "verify": {"verify_trust": True}}
        context = c2pa.Context(settings=c2pa.Settings.from_dict(trust))
    try:
        reader = c2pa.Reader(mime, io.BytesIO(data), context=context)
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in str(exc):
            return Verification(state=None)
        return Verification(state="Invalid", failures=[str(exc)])
    with reader:
        store = json.loads(reader.json())
        results = store.get("validation_results") or {}
        failures = [str(item.get("code")) for item in results.get("activeManifest", {}).get("failure", [])]
        return Verification(
            state=reader.get_validation_state(), manifest=reader.get_active_manifest() or {}, failures=failures
        )
