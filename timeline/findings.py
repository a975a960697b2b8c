"""The findings report: a verdict, the evidence grouped into stories, and one chart.

``findings.md`` and a self-contained ``findings.html`` (inline CSS and SVG, no script, no
network) are written from ``records.jsonl``. A *story* gathers the tagged records that concern
one mail object — a spool, an mbox, a mailbox identity, a mail-store file — so that, for example,
``mail -f /var/mail/carol``, ``sudo rm /var/mail/carol``, the unallocated inode of
``/var/mail/carol`` and the messages recovered from it read as one chain of evidence, in time
order. Tagged records that name no object are grouped by rule.
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.atomic import atomic_open
from collector.timeutil import iso_utc
from parsers.evtx_correlate import export_then_removed
from parsers.record import loads_record
from parsers.rules.engine import SEVERITY_RANK
from parsers.targets import record_targets

FINDINGS = "findings.md"
FINDINGS_HTML = "findings.html"
_STRONG = {"high", "critical"}
_BINS = 48


@dataclass
class Story:
    """Tagged records about one object (or one rule, when they name no object)."""

    key: str
    title: str
    records: list[dict[str, Any]] = field(default_factory=list)
    recovered_messages: int = 0

    @property
    def start(self) -> int:
        return min(_first_time(r) for r in self.records)

    @property
    def severity(self) -> str:
        return max((r["attributes"].get("severity", "low") for r in self.records),
                   key=lambda s: SEVERITY_RANK.get(s, 0))


#: Record types that are one message each (what the chart's "mail received" counts).
_MESSAGE_TYPES = (":message", ":item", ":emlx")

#: The technique the verdict is about (ATT&CK "Indicator Removal: Clear Mailbox Data").
MAIL_CLEARING = "T1070.008"

def _first_time(record: dict[str, Any]) -> int:
    """The moment a record stands for in a story: a deletion or last write where it has one."""
    timestamps = record.get("timestamps") or {}
    for wanted in ("Deletion", "Content Modification Time"):
        chosen = [v for d, v in timestamps.items() if wanted in d]
        if chosen:
            return min(chosen)
    times = list(timestamps.values()) or list((record.get("time_bounds") or {}).values())
    return min(times) if times else 0


def _offset(provenance: dict[str, Any]) -> str:
    offset = provenance.get("offset")
    return "-" if offset is None else str(offset)


def _when(record: dict[str, Any]) -> str:
    if record.get("timestamps"):
        return iso_utc(_first_time(record))
    bounds = record.get("time_bounds") or {}
    if bounds:
        return "undated (" + "; ".join(f"{k}: {iso_utc(v)}" for k, v in sorted(bounds.items())) + ")"
    return "undated"


#: Record types whose times are the chart's "commands run".
_COMMAND_TYPES = ("shell:", "windows:evtx:powershell", "windows:exchange:cmdlet", "windows:evtx:exchange",
                  "windows:evtx:security:process")


class Evidence:
    """What the report reads from the records: the tagged ones, recovered-message counts per
    mailbox and the times of each chart series.

    It is gathered while the parse stage writes ``records.jsonl`` (one per file in the parse
    workers, as a :class:`parsers.engine.RecordObserver`, joined in manifest order), so that
    ``run`` does not read every record again; :func:`load_evidence` reads it from the file.
    Either way it sees the same record dicts in the same order, so the report is the same.
    """

    def __init__(self) -> None:
        self.tagged: list[dict[str, Any]] = []
        self.recovered: dict[str, int] = defaultdict(int)
        self.series: dict[str, list[int]] = {"mail received": [], "commands run": [],
                                             "deletion evidence": []}

    def observe(self, record: Any, line: bytes) -> None:
        """A record the parse stage wrote as ``line``: read back only when it can matter (tagged,
        mail or a command), which most records of a large event log are not."""
        data_type = record.data_type
        if record.tags or (isinstance(data_type, str) and data_type.startswith(("mail:", *_COMMAND_TYPES))):
            self.add(loads_record(line))

    def add(self, record: dict[str, Any]) -> None:
        """One record as read from ``records.jsonl``."""
        series = self.series
        data_type = record["data_type"]
        when = _first_time(record) if record.get("timestamps") else None
        if record.get("tags"):
            self.tagged.append(record)
            if when is not None:
                series["deletion evidence"].append(when)
        if data_type.startswith("mail:"):
            if record.get("recovered"):
                self.recovered[(record.get("attributes") or {}).get("mailbox")
                               or record["provenance"]["source_path"]] += 1
            if when is not None and data_type.endswith(_MESSAGE_TYPES):  # not folders, gaps
                series["mail received"].append(when)
        elif data_type.startswith(_COMMAND_TYPES):
            if when is not None:
                series["commands run"].append(when)

    def __bool__(self) -> bool:
        """Whether any record mattered (an empty one is not sent back by a parse worker)."""
        return bool(self.tagged or self.recovered or any(self.series.values()))

    def extend(self, other: Evidence) -> None:
        """Append what ``other`` gathered from the records that follow this one's."""
        self.tagged.extend(other.tagged)
        for mailbox, count in other.recovered.items():
            self.recovered[mailbox] += count
        for name, values in other.series.items():
            self.series[name].extend(values)

    def sorted_tagged(self) -> list[dict[str, Any]]:
        """The tagged records by time, then source file and position (stable)."""
        return sorted(self.tagged, key=lambda r: (_first_time(r), r["provenance"]["source_path"], r["order"]))


def load_evidence(records_path: Path) -> Evidence:
    """The :class:`Evidence` of a ``records.jsonl`` file."""
    evidence = Evidence()
    with records_path.open("rb") as handle:
        for line in handle:
            evidence.add(loads_record(line))
    return evidence


def _export_stories(tagged: list[dict[str, Any]]) -> tuple[dict[str, Story], set[int]]:
    """Stories for mailbox exports whose request was removed soon after (see evtx_correlate)."""
    by_place = {(r["provenance"]["source_path"], r["order"]): index for index, r in enumerate(tagged)}
    stories: dict[str, Story] = {}
    used: set[int] = set()
    for finding in export_then_removed(tagged):
        made, gone = finding["created"], finding["removed"]
        indexes = [by_place.get((part["source_path"], part["order"])) for part in (made, gone)]
        if None in indexes:
            continue
        who = made["mailbox"] or gone["mailbox"] or made["host"] or "?"
        key = f"export:{who}"
        title = (f"mailbox {who}: exported, then the export request removed "
                 f"{finding['seconds_between']} s later ({finding['rule']}, {finding['technique']})")
        story = stories.setdefault(key, Story(key=key, title=title))  # one story per mailbox
        for index in indexes:
            if index not in used:
                story.records.append(tagged[index])
                used.add(index)
    return stories, used


def build_stories(tagged: list[dict[str, Any]], recovered: dict[str, int]) -> list[Story]:
    """Group tagged records into stories (by object, else by rule), oldest story first."""
    stories, used = _export_stories(tagged)
    for index, record in enumerate(tagged):
        if index in used:
            continue
        targets = record_targets(record)
        if targets:
            key = targets[0].lower() if "\\" in targets[0] or ":" in targets[0][:3] else targets[0]
            story = stories.setdefault(key, Story(key=key, title=targets[0]))
        else:
            rule = next((t for t in record["tags"] if not t.startswith("T1")), record["tags"][0])
            story = stories.setdefault(f"rule:{rule}", Story(key=f"rule:{rule}", title=rule))
        story.records.append(record)
    for story in stories.values():
        story.recovered_messages = recovered.get(story.title, 0)
    return sorted(stories.values(), key=lambda s: (s.start, s.key))


def verdict(tagged: list[dict[str, Any]]) -> str:
    """Evidence found / indications / none found, from the severities of the rule hits.

    The question is mail clearing: only a high or critical hit of T1070.008 itself is evidence of
    it. Cleared event logs or shell histories (T1070.001, T1070.003) and the like, however severe,
    are indications: the cover-up around mail clearing, not the clearing.
    """
    if any(r["attributes"].get("severity") in _STRONG and MAIL_CLEARING in (r.get("tags") or ())
           for r in tagged):
        return "evidence found"
    return "indications" if tagged else "none found"


def _narrative(story: Story) -> str:
    steps = []
    for record in sorted(story.records, key=_first_time):
        steps.append(f"{_when(record)} {record['message']}")
    text = " → ".join(steps)
    if story.recovered_messages:
        text += f" ({story.recovered_messages} messages recovered from deleted data)"
    return text


def _write_markdown(path: Path, result: str, stories: list[Story], tagged: list[dict[str, Any]]) -> None:
    with atomic_open(path, "w", newline="\n", errors="backslashreplace") as out:
        out.write(f"# inboxtrail findings\n\n**Mail clearing: {result}** ({len(tagged)} tagged records "
                  f"in {len(stories)} stories)\n\n")
        for number, story in enumerate(stories, 1):
            out.write(f"## {number}. {story.title} ({story.severity})\n\n{_narrative(story)}\n\n")
            for record in sorted(story.records, key=_first_time):
                provenance = record["provenance"]
                out.write(f"- **{_when(record)}** — {record['message']}\n")
                for hit in record["attributes"].get("rule_hits", []):
                    out.write(f"  - rule: {hit}\n")
                out.write(f"  - host: {record.get('host') or '-'}; user: {record.get('user') or '-'}; "
                          f"source: `{provenance['source_path']}` "
                          f"(sha256 {provenance.get('sha256') or '-'}, offset {_offset(provenance)}, "
                          f"bundle `{provenance.get('bundle_path') or '-'}`)\n")
            out.write("\n")


def chart_svg(series: dict[str, list[int]], width: int = 900, height: int = 220) -> str:
    """Activity over time as an SVG bar chart: one colour per series, evidence on top."""
    evidence = series.get("deletion evidence") or []
    everything = [t for values in series.values() for t in values]
    if not everything:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40">'
                '<text x="10" y="25">no dated events</text></svg>')
    if evidence:  # centre on the clearing: two weeks before the first evidence to a day after the last
        low, high = min(evidence) - 14 * 86_400_000_000, max(evidence) + 86_400_000_000
    else:
        low, high = min(everything), max(everything)
    high = max(high, low + 1)
    step = (high - low) / _BINS
    colours = {"mail received": "#4c78a8", "commands run": "#f2a541", "deletion evidence": "#d62728"}
    counts = {name: [0] * _BINS for name in series}
    for name, values in series.items():
        for value in values:
            if low <= value <= high:
                counts[name][min(_BINS - 1, int((value - low) / step))] += 1
    peak = max((max(c) for c in counts.values()), default=1) or 1
    left, bottom, plot_h = 50, height - 40, height - 70
    bar_w = (width - left - 10) / _BINS / len(series)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="activity over time">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
             f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#333"/>',
             f'<line x1="{left}" y1="{bottom}" x2="{left}" y2="{bottom - plot_h}" stroke="#333"/>',
             f'<text x="5" y="{bottom - plot_h + 10}" font-size="11">{peak}</text>',
             f'<text x="{left}" y="{height - 22}" font-size="11">{iso_utc(int(low))[:16]}</text>',
             f'<text x="{width - 150}" y="{height - 22}" font-size="11">{iso_utc(int(high))[:16]}</text>']
    for index, name in enumerate(series):
        for b, count in enumerate(counts[name]):
            if count:
                h = max(2.0, plot_h * count / peak)
                x = left + b * (width - left - 10) / _BINS + index * bar_w
                parts.append(f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                             f'height="{h:.1f}" fill="{colours.get(name, "#888")}">'
                             f'<title>{html.escape(name)}: {count}</title></rect>')
        parts.append(f'<rect x="{left + 10 + index * 170}" y="{height - 14}" width="10" height="10" '
                     f'fill="{colours.get(name, "#888")}"/><text x="{left + 24 + index * 170}" '
                     f'y="{height - 5}" font-size="11">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
.verdict{font-size:1.6em;padding:.6em 1em;border-radius:6px;color:#fff}
.v-evidence{background:#b71c1c}.v-indications{background:#e65100}.v-none{background:#2e7d32}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 6px;
font-size:.85em;vertical-align:top;text-align:left}th{background:#f3f3f3}code{font-size:.9em}
.story{margin-top:1.5em}.narrative{background:#fafafa;border-left:4px solid #d62728;padding:.5em 1em}"""


def _write_html(path: Path, result: str, stories: list[Story], tagged: list[dict[str, Any]],
                series: dict[str, list[int]]) -> None:
    css_class = {"evidence found": "v-evidence", "indications": "v-indications"}.get(result, "v-none")
    esc = html.escape
    out_parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>inboxtrail findings"
                 f"</title><style>{_CSS}</style></head><body><h1>inboxtrail findings</h1>",
                 f'<div class="verdict {css_class}">Mail clearing: {esc(result)}</div>',
                 f"<p>{len(tagged)} tagged records in {len(stories)} stories.</p>",
                 "<h2>Activity over time</h2>", chart_svg(series)]
    for number, story in enumerate(stories, 1):
        out_parts.append(f'<div class="story"><h2>{number}. {esc(story.title)} '
                         f'<small>({esc(story.severity)})</small></h2>'
                         f'<p class="narrative">{esc(_narrative(story))}</p><table><tr><th>time</th>'
                         "<th>what</th><th>rule / technique</th><th>host / user</th><th>source</th></tr>")
        for record in sorted(story.records, key=_first_time):
            provenance = record["provenance"]
            rules = "<br>".join(esc(h) for h in record["attributes"].get("rule_hits", []))
            out_parts.append(
                f"<tr><td>{esc(_when(record))}</td><td>{esc(record['message'])}</td><td>{rules}</td>"
                f"<td>{esc(record.get('host') or '-')} / {esc(record.get('user') or '-')}</td>"
                f"<td><code>{esc(provenance['source_path'])}</code><br>sha256 "
                f"<code>{esc(provenance.get('sha256') or '-')}</code><br>"
                f"offset {_offset(provenance)}</td></tr>")
        out_parts.append("</table></div>")
    out_parts.append("</body></html>\n")
    with atomic_open(path, "w", newline="\n", errors="backslashreplace") as out:
        out.write("".join(out_parts))


def write_findings(records_path: Path, out_dir: Path,
                   evidence: Evidence | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Write ``findings.md`` and ``findings.html``; return the verdict and the tagged records.

    ``evidence``, when the parse stage gathered it, saves reading ``records_path`` again.
    """
    if evidence is None:
        evidence = load_evidence(records_path)
    tagged = evidence.sorted_tagged()
    stories = build_stories(tagged, evidence.recovered)
    result = verdict(tagged)
    _write_markdown(out_dir / FINDINGS, result, stories, tagged)
    _write_html(out_dir / FINDINGS_HTML, result, stories, tagged, evidence.series)
    return result, tagged
