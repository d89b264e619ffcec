"""Certificates generated at test time with the openssl CLI: a CA, a server and a client, and a rogue CA (P-256
keys: generated in milliseconds, where RSA-2048 took about a second for the set)."""

from __future__ import annotations

import pathlib
import subprocess
from dataclasses import dataclass


def _run(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(dirpath: pathlib.Path, name: str) -> None:
    _run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
        cwd=dirpath,
    )


def _leaf(dirpath: pathlib.Path, name: str, ca: str, san: str, usage: str) -> None:
    ext = dirpath / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\n")
    _run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        cwd=dirpath,
    )
    _run(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.crt",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext.name,
        "-out",
        f"{name}.crt",
        cwd=dirpath,
    )


@dataclass
class Certs:
    dir: pathlib.Path

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def read(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()


def make_certs(dirpath: pathlib.Path) -> Certs:
    _ca(dirpath, "ca")
    _ca(dirpath, "rogue-ca")
    _leaf(dirpath, "server", "ca", "DNS:localhost,IP:127.0.0.1", "serverAuth")
    _leaf(dirpath, "client", "ca", "DNS:client", "clientAuth")
    _leaf(dirpath, "rogue-client", "rogue-ca", "DNS:client", "clientAuth")
    return Certs(dirpath)
