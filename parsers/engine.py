"""The parse stage: a bundle in, ``records.jsonl`` (and the parse warnings) out.

Files are parsed in manifest order and each file's records in file order, so the same bundle
always gives the same ``records.jsonl``. The parsers of a file come from its artifact spec; files
without one (loose files, ``--path`` extras) are recognised by content and name. Any exception a
parser raises is caught: the file gets a warning and the records read so far are kept.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collector.atomic import atomic_open
from collector.bundle import REPORT, read_manifest
from collector.progress import progress
from parsers.base import REGISTRY, ParseContext
from parsers.filestat import FileStatParser
from parsers.record import Provenance, Record
from parsers.rules import default_engine

log = logging.getLogger("inboxtrail.parse")
SNIFF_BYTES = 4096
RECORDS = "records.jsonl"
WARNINGS = "parse_warnings.jsonl"


def sniff_parsers(path: Path, name: str) -> list[str]:
    """Names of the parsers that recognise a file by its first bytes and name."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    return [parser_name for parser_name, cls in sorted(REGISTRY.items()) if cls.sniff(head, name)]


def _hosts(bundle: Path) -> dict[str, str]:
    try:
        report = json.loads((bundle / REPORT).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return {fs["label"]: fs["hostname"] for fs in report.get("filesystems", ()) if fs.get("hostname")}


def _homes(manifest: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    homes = {}
    for line in manifest:
        if line.get("home") and line.get("user"):
            homes[(line["filesystem"], line["user"])] = line["home"]
    return homes


def iter_records(bundle: Path, stats: Counter, warnings: list[dict[str, Any]],
                 quiet: bool = False) -> Iterator[Record]:
    """Yield every record of a bundle, tagged by the rule engine."""
    manifest = read_manifest(bundle)
    hosts = _hosts(bundle)
    engine = default_engine()
    filestat = FileStatParser()
    bar = progress(total=len(manifest), desc="parse", unit="file", quiet=quiet)
    try:
        for entry in manifest:
            bar.update(1)
            provenance = Provenance(bundle_path=entry.get("bundle_path"),
                                    source_path=entry["source_path"], sha256=entry.get("sha256"),
                                    filesystem=entry.get("filesystem", ""),
                                    evidence=entry.get("provenance") or "")
            ctx = ParseContext(provenance=provenance, host=hosts.get(entry.get("filesystem", "")),
                               user=entry.get("user"), entry=entry)
            for record in filestat.parse(None, ctx):
                stats["fs:stat"] += 1
                yield engine.tag(record)
            if not entry.get("bundle_path") or entry.get("outcome") not in ("collected", "recovered"):
                continue
            path = bundle / entry["bundle_path"]
            name_only = entry["source_path"].rsplit("/", 1)[-1]
            names = list(entry.get("parsers") or ()) or sniff_parsers(path, name_only)
            if not names:
                ctx.warn("no parser recognises this file")
            for name in names:
                parser_cls = REGISTRY.get(name)
                if parser_cls is None:
                    ctx.warn(f"unknown parser {name!r} named by artifact {entry.get('artifact')}")
                    continue
                count = 0
                try:
                    with path.open("rb") as handle:
                        for record in parser_cls().parse(handle, ctx):
                            count += 1
                            yield engine.tag(record)
                except Exception as exc:
                    ctx.warn(f"parser {name} failed after {count} records: {type(exc).__name__}: {exc}")
                stats[name] += count
            for warning in ctx.warnings:
                log.warning("%s%s: %s", warning["path"],
                            f" @{warning['offset']}" if warning["offset"] is not None else "",
                            warning["message"])
            warnings.extend(ctx.warnings)
    finally:
        bar.close()


def parse_bundle(bundle: str | Path, out_dir: str | Path, quiet: bool = False) -> dict[str, Any]:
    """Write ``records.jsonl`` and ``parse_warnings.jsonl`` for ``bundle`` into ``out_dir``."""
    bundle, out_dir = Path(bundle), Path(out_dir)
    stats: Counter = Counter()
    warnings: list[dict[str, Any]] = []
    tagged = 0
    total = 0
    with atomic_open(out_dir / RECORDS, "w", newline="\n") as out:
        for record in iter_records(bundle, stats, warnings, quiet=quiet):
            total += 1
            tagged += bool(record.tags)
            out.write(record.to_json() + "\n")
    with atomic_open(out_dir / WARNINGS, "w", newline="\n") as out:
        for warning in warnings:
            out.write(json.dumps(warning, ensure_ascii=False, sort_keys=True) + "\n")
    log.info("parsed %d records (%d tagged), %d warnings", total, tagged, len(warnings))
    return {"records": total, "tagged": tagged, "warnings": len(warnings), "per_parser": dict(stats)}
