"""Fetch ``uv`` into ``.tools/bin/`` of this checkout, with nothing but Python's standard library.

The quick start's scripts need ``uv``. Where it is not on ``PATH``, this takes uv's wheel for this
machine from PyPI (or ``PIP_INDEX_URL``'s index: any that speaks the JSON simple API, PEP 691),
checks it against the SHA-256 that the index lists, and unpacks the one ``uv``
binary from it. No ``pip``, no ``venv``, nothing installed into the system's or the user's Python:
a distribution's externally-managed Python (PEP 668), or one without ``pip`` and ``venv`` (Debian
ships them apart), runs it as well as any. Prints the binary's path.

    python3 scripts/bootstrap_uv.py
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import stat
import sys
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

UV_VERSION = "0.13.9"
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
TOOLS = Path(__file__).resolve().parent.parent / ".tools" / "bin"
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def wheel_tag() -> str:
    """The part of uv's wheel names that fits this machine, e.g. ``manylinux_2_17_x86_64``."""
    arch = ARCHES.get(platform.machine().lower())
    if arch is None:
        sys.exit(f"no uv wheel for {platform.machine()}: install uv (https://docs.astral.sh/uv/)")
    if sys.platform == "darwin":
        return "macosx_10_12_x86_64" if arch == "x86_64" else "macosx_11_0_arm64"
    if sys.platform.startswith("linux"):
        musl = platform.libc_ver()[0] != "glibc"
        return f"musllinux_1_1_{arch}" if musl else f"manylinux_2_17_{arch}"
    sys.exit(f"no uv bootstrap for {sys.platform}: install uv (https://docs.astral.sh/uv/)")


def fetch_uv(version: str = UV_VERSION, into: Path = TOOLS) -> Path:
    """Unpack uv ``version`` into ``into`` (unless there already) and return the binary's path."""
    binary = into / "uv"
    if binary.exists():
        return binary
    listing = urllib.request.Request(
        f"{INDEX}/uv/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(listing, timeout=60) as answer:
        files = json.load(answer)["files"]
    name = f"uv-{version}-py3-none-"
    tag = wheel_tag()
    wheel = next(
        (f for f in files if f["filename"].startswith(name) and tag in f["filename"]),
        None,
    )
    if wheel is None:
        sys.exit(f"{INDEX} has no uv {version} wheel for {tag}: install uv (https://docs.astral.sh/uv/)")
    print(f"fetching {wheel['filename']} from {INDEX}", file=sys.stderr)
    url = urllib.parse.urljoin(listing.full_url, wheel["url"])  # PEP 691 allows relative URLs
    with urllib.request.urlopen(url, timeout=300) as answer:
        body = answer.read()
    if hashlib.sha256(body).hexdigest() != wheel["hashes"]["sha256"]:
        sys.exit(f"{wheel['filename']}: its SHA-256 is not the one the index lists; nothing unpacked")
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".data/scripts/uv"))
        into.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        partial.write_bytes(archive.read(member))
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(partial, binary)  # whole or absent: an interrupted fetch leaves no half binary
    return binary


if __name__ == "__main__":
    print(fetch_uv())
