"""A first findings summary: the tagged records of a run, in time order, with a verdict.

This is the plain-text core that the CLI prints at the end of ``run`` and writes to
``findings.md``; the grouped, charted report builds on it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from collector.atomic import atomic_open
from collector.timeutil import iso_utc

FINDINGS = "findings.md"
_STRONG = {"high", "critical"}


def tagged_records(records_path: Path) -> list[dict[str, Any]]:
    """Every record of ``records.jsonl`` that a rule tagged, sorted by its first time."""
    found = []
    with records_path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("tags"):
                found.append(record)

    def first_time(record: dict[str, Any]) -> int:
        times = list((record.get("timestamps") or {}).values()) or list(
            (record.get("time_bounds") or {}).values())
        return min(times) if times else 0

    found.sort(key=lambda r: (first_time(r), r["provenance"]["source_path"], r["order"]))
    for record in found:
        record["_time"] = first_time(record)
    return found


def verdict(findings: list[dict[str, Any]]) -> str:
    """Evidence found / indications / none found, from the severities of the rule hits."""
    severities = {f["attributes"].get("severity") for f in findings}
    if severities & _STRONG:
        return "evidence found"
    return "indications" if findings else "none found"


def write_findings(records_path: Path, out_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    """Write ``findings.md``; return the verdict and the findings."""
    findings = tagged_records(records_path)
    result = verdict(findings)
    rules = Counter(tag for f in findings for tag in f["tags"] if not tag.startswith("T1"))
    with atomic_open(out_dir / FINDINGS, "w", newline="\n", errors="backslashreplace") as out:
        out.write(f"# inboxtrail findings\n\n**Mail clearing: {result}** "
                  f"({len(findings)} tagged records)\n\n")
        if rules:
            out.write("| rule | records |\n|---|---|\n")
            for rule, count in sorted(rules.items()):
                out.write(f"| {rule} | {count} |\n")
            out.write("\n")
        for finding in findings:
            bounds = ", ".join(f"{k}: {iso_utc(v)}" for k, v in (finding.get("time_bounds") or {}).items())
            when = iso_utc(finding["_time"]) if finding.get("timestamps") else (
                f"undated ({bounds})" if bounds else "undated")
            provenance = finding["provenance"]
            out.write(f"## {when} — {finding['message']}\n\n")
            for hit in finding["attributes"].get("rule_hits", []):
                out.write(f"- rule: {hit}\n")
            out.write(f"- host: {finding.get('host') or '-'}; user: {finding.get('user') or '-'}\n")
            out.write(f"- source: `{provenance['source_path']}` (sha256 {provenance.get('sha256') or '-'},"
                      f" bundle `{provenance.get('bundle_path') or '-'}`)\n\n")
    return result, findings
