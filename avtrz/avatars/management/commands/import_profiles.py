"""Bulk-load a profile directory from CSV or JSON lines, reporting bad rows without stopping."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from avtrz.avatars.directory import ImportError_, import_profile


class Command(BaseCommand):
    help = (
        "Import profiles from a .csv or .jsonl file. Fields: handle or linkedin_url, name, headline, summary, "
        "industry, location, open_to_work, and photo_file (a path relative to the file) or photo_url."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        if not file.is_file():
            raise CommandError(f"{file} is not a file.")
        imported = failed = 0
        for number, row in self._rows(file):
            try:
                profile = import_profile(row, base_dir=file.parent)
            except ImportError_ as exc:
                failed += 1
                self.stderr.write(f"{file.name}:{number}: {exc}")
            else:
                imported += 1
                self.stdout.write(f"{file.name}:{number}: {profile.handle} ({profile.status})", ending="\n")
        self.stdout.write(f"Imported {imported} profile(s), {failed} row(s) refused.")
        if failed and not imported:
            raise CommandError("Nothing was imported.")

    def _rows(self, file: Path):
        with file.open(encoding="utf-8-sig", newline="") as handle:
            if file.suffix.lower() == ".csv":
                for number, row in enumerate(csv.DictReader(handle), start=2):
                    yield number, row
                return
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    row = {"_error": f"not valid JSON ({exc.msg})"}
                yield number, row if isinstance(row, dict) else {"_error": "each line must be a JSON object"}
