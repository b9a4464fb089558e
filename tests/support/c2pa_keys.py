"""A throwaway C2PA signing chain for tests: a CA and a leaf certificate (EC P-256) made with `cryptography`.

C2PA refuses a self-signed signing certificate, so there are two: the CA (the trust anchor a verifier is given)
and the leaf that signs (digitalSignature, emailProtection, not a CA), valid from yesterday for 30 days."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class SigningChain:
    key_file: Path  # the leaf's private key (PKCS#8 PEM, unencrypted)
    certs_file: Path  # leaf certificate, then the CA's
    anchors_file: Path  # the CA certificate alone

    def env(self) -> dict[str, str]:
        return {"C2PA_SIGNING_KEY_FILE": str(self.key_file), "C2PA_SIGNING_CERTS_FILE": str(self.certs_file)}


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )


def make_signing_chain(folder: Path, *, name: str = "Fashion AI Studio test signer") -> SigningChain:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Throwaway test CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fashion AI Studio tests")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fashion AI Studio tests")])
    leaf = (
        x509.CertificateBuilder().subject_name(leaf_name).issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    chain = SigningChain(folder / "signer.key", folder / "signer-chain.pem", folder / "anchors.pem")
    chain.key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    chain.key_file.chmod(0o600)
    pem = serialization.Encoding.PEM
    chain.certs_file.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    chain.anchors_file.write_bytes(ca.public_bytes(pem))
    return chain
