"""The headset page's TLS certificate: self-signed, made once per station with ``openssl``, kept in the config dir.

WebXR runs only in a secure context, so a headset on the LAN needs HTTPS. The station makes an
EC P-256 certificate (``openssl req -x509``, Debian's ``openssl``; the ``cryptography`` package is
not a dependency of this project) for ``localhost``, this machine's names and addresses, valid for
:data:`VALID_DAYS` days (Apple devices refuse TLS server certificates valid longer than 825 days:
"Requirements for trusted certificates in iOS 13 and macOS 10.15", support.apple.com/HT210176).
Files: ``<dir>/xr-cert.pem`` (0644) and ``<dir>/xr-key.pem`` (0600); an existing pair is kept.
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
from pathlib import Path

__all__ = ["CertificateError", "VALID_DAYS", "cert_dir", "ensure_certificate", "station_names", "trust_instructions"]

VALID_DAYS = 825
CERT_NAME, KEY_NAME = "xr-cert.pem", "xr-key.pem"


class CertificateError(RuntimeError):
    """The certificate could not be made or read; the text is one line saying what to do."""


def cert_dir() -> Path:
    """``$ROBOT_CAPTURE_CONFIG/xr`` when set (the station's edited config copy), else ``~/.config/robot_capture/xr``."""
    env = os.environ.get("ROBOT_CAPTURE_CONFIG")
    return (Path(env) if env else Path.home() / ".config" / "robot_capture") / "xr"


def station_names() -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the certificate covers: localhost, hostname(.local), loopback, LAN addresses."""
    dns, ips = ["localhost"], ["127.0.0.1", "::1"]
    try:
        host = socket.gethostname()
        dns += [host, f"{host}.local"]
        for info in socket.getaddrinfo(host, None):
            ips.append(info[4][0])
    except OSError:
        pass
    try:  # the address of the default route (no packet is sent by a UDP connect)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            ips.append(s.getsockname()[0])
    except OSError:
        pass
    valid = []
    for i in ips:
        try:
            valid.append(str(ipaddress.ip_address(i.split("%")[0])))
        except ValueError:  # not an address literal: leave it out of the certificate
            pass
    ips = valid
    return list(dict.fromkeys(dns)), list(dict.fromkeys(ips))


def ensure_certificate(directory=None, dns=None, ips=None) -> tuple[Path, Path, bool]:
    """Return ``(cert, key, created)``; make the pair with ``openssl`` when either file is missing.

    Raises:
        CertificateError: ``openssl`` absent or failing, or the folder not writable (one line each).
    """
    d = Path(directory) if directory else cert_dir()
    cert, key = d / CERT_NAME, d / KEY_NAME
    if cert.is_file() and key.is_file():
        return cert, key, False
    exe = shutil.which("openssl")
    if not exe:
        raise CertificateError("no certificate yet and `openssl` is not installed (apt-get install openssl), "
                               "or give your own with --cert and --key")
    if dns is None or ips is None:
        dns0, ips0 = station_names()
        dns, ips = dns if dns is not None else dns0, ips if ips is not None else ips0
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CertificateError(f"cannot create {d}: {exc.strerror}") from None
    san = ",".join([f"DNS:{n}" for n in dns] + [f"IP:{i}" for i in ips])
    tmp_key, tmp_cert = d / (KEY_NAME + ".tmp"), d / (CERT_NAME + ".tmp")
    cmd = [exe, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", str(tmp_key), "-out", str(tmp_cert), "-days", str(VALID_DAYS),
           "-subj", f"/CN=robot-capture xr {dns[1] if len(dns) > 1 else 'station'}",
           "-addext", f"subjectAltName={san}", "-addext", "extendedKeyUsage=serverAuth"]
    old = os.umask(0o077)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CertificateError(f"openssl failed: {exc}") from None
    finally:
        os.umask(old)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise CertificateError(f"openssl could not make the certificate: {last}")
    tmp_cert.chmod(0o644)
    os.replace(tmp_key, key)
    os.replace(tmp_cert, cert)
    return cert, key, True


def trust_instructions(url: str, cert: Path) -> str:
    """How to open the page and trust the self-signed certificate on each headset (plain text)."""
    return f"""\
Open {url} in the headset's browser (same network as this station).
The certificate is self-signed ({cert}); each headset asks once:
  Meta Quest 3 (Browser): "Your connection is not private" -> Advanced -> Proceed to <address>.
  PICO 4 Ultra (PICO Browser): "Not secure" warning -> Advanced / Continue -> Proceed.
  Apple Vision Pro (Safari): "This Connection Is Not Private" -> Show Details -> visit this website;
    or trust it for good: open {url.rstrip('/')}/cert.pem, install the profile (Settings -> General ->
    VPN & Device Management), then Settings -> General -> About -> Certificate Trust Settings -> on.
  Safari on visionOS needs WebXR on: Settings -> Apps -> Safari -> Advanced -> Feature Flags -> WebXR."""
