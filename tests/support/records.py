"""What every installed distribution's RECORD promises: its files, with their hashes."""

from __future__ import annotations

import base64
import csv
import hashlib
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from pathlib import Path


def broken_records(site_packages: Path) -> list[str]:
    """``dist-info: path (missing|changed)`` for every RECORD line not as recorded."""
    problems = []
    for record in sorted(site_packages.glob("*.dist-info/RECORD")):
        with record.open(newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if len(row) < 2 or not row[1]:
                    continue
                path = site_packages / row[0]
                if not path.is_file():
                    problems.append(f"{record.parent.name}: {row[0]} missing")
                    continue
                algorithm, _, expected = row[1].partition("=")
                digest = hashlib.new(algorithm, path.read_bytes()).digest()
                if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != expected:
                    problems.append(f"{record.parent.name}: {row[0]} changed")
    return problems
