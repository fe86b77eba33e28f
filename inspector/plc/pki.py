"""Throwaway OPC UA application certificates for a loopback cell (benchmarks, tests).

Self-signed, valid for two days, written next to their private keys (mode 0600) in a folder
the caller owns, with one trust folder per side holding the other side's certificate. A
production cell uses certificates issued by the plant's PKI (see
``plc_configs/opcua_production.example.yaml``); nothing here is meant for one.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

SERVER_URI = "urn:inspector:linesim"
STATION_URI = "urn:inspector:station"


@dataclass(frozen=True)
class AppCert:
    cert: Path  # DER
    key: Path  # PEM, mode 0600


@dataclass(frozen=True)
class LoopbackPki:
    server: AppCert
    server_trust: Path  # certificates the server trusts (the station's)
    station: AppCert
    station_trust: Path  # certificates the station trusts (the server's)


def app_certificate(folder: Path, name: str, uri: str, *, server: bool, days: int = 2) -> AppCert:
    """A self-signed application certificate for ``uri`` (localhost and this host's name)."""
    from asyncua.crypto.cert_gen import (
        dump_private_key_as_pem,
        generate_private_key,
        generate_self_signed_app_certificate,
    )

    key = generate_private_key()
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(uri),
        x509.DNSName("localhost"),
        x509.DNSName(socket.gethostname()),
    ]
    use = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = generate_self_signed_app_certificate(key, name, {}, names, [use], days=days)
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.touch(mode=0o600)
    key_path.chmod(0o600)
    key_path.write_bytes(dump_private_key_as_pem(key))
    return AppCert(cert_path, key_path)


def trust_folder(folder: Path, *certs: Path) -> Path:
    """A new folder holding copies of ``certs`` (a trust list)."""
    folder.mkdir(parents=True)
    for cert in certs:
        (folder / cert.name).write_bytes(cert.read_bytes())
    return folder


def loopback_pki(folder: Path) -> LoopbackPki:
    """Server (line simulator) and station certificates that trust each other, under ``folder``."""
    server = app_certificate(folder, "linesim", SERVER_URI, server=True)
    station = app_certificate(folder, "station", STATION_URI, server=False)
    return LoopbackPki(
        server=server,
        server_trust=trust_folder(folder / "server_trust", station.cert),
        station=station,
        station_trust=trust_folder(folder / "station_trust", server.cert),
    )
