"""Acquisition: walk every file system of a source with the artifact specs into a bundle."""

from __future__ import annotations

import datetime as _dt
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector import __version__
from collector.artifacts import (
    ArtifactSpec,
    UserHome,
    expand_path,
    load_artifacts,
    owner_of,
    read_hostname,
    user_homes,
)
from collector.bundle import HASHES, BundleWriter, CollectContext
from collector.globbing import MAX_RECURSION_DEPTH, GlobHit, glob
from collector.progress import progress
from collector.source import FileSystemView, Source, SourceFile
from collector.unallocated import DEFAULT_BUDGET_SECONDS, carve_filesystem

log = logging.getLogger("inboxtrail.collect")

AD_HOC = "AdHocPath"
LOOSE = "LooseFiles"
#: Artifacts read by these parsers are Maildir trees: their folders' own times are evidence too.
MAILDIR_PARSERS = frozenset({"maildir"})
MAILDIR_SUBDIRS = ("cur", "new", "tmp")
_ESCAPED = re.compile(r"\[([*?\[])\]")  # what artifacts.glob_escape writes for a literal * ? [


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def collect(source: Source, bundle_dir: str | Path, artifacts: Sequence[str] | None = None,
            extra_paths: Sequence[str] = (), quiet: bool = False,
            hashes: Sequence[str] = HASHES,
            carve_budget: float = DEFAULT_BUDGET_SECONDS) -> dict[str, Any]:
    """Collect every artifact (and ``extra_paths``) from ``source`` into ``bundle_dir``.

    Args:
        hashes: digests per file, ``("sha256", "md5")`` (default) or ``("sha256",)``; MD5 is the
            slowest part of copying, and ``report.json`` says which digests were computed.
        carve_budget: seconds per file system for carving mail and event-log leftovers out of
            unallocated blocks (``collector/unallocated.py``); 0 turns carving off.

    Returns:
        The report written to ``report.json``.
    """
    started = _now()
    writer = BundleWriter(Path(bundle_dir), hashes=tuple(hashes), pipelined=True)
    warnings: list[str] = []
    filesystems = []
    specs = load_artifacts(artifacts)
    bar = progress(desc="collect", unit="file", quiet=quiet)
    position = "opening the source"

    def report(interrupted: bool) -> dict[str, Any]:
        return {"tool": "inboxtrail", "version": __version__, "command": sys.argv,
                "source": source.description, "source_kind": source.kind,
                "started": started, "finished": _now(), "filesystems": filesystems,
                "warnings": warnings, "interrupted": interrupted,
                **({"interrupted_at": f"collect: {position}"} if interrupted else {})}

    try:
        for fs in source.filesystems():
            homes = user_homes(fs, warnings)
            hostname = read_hostname(fs)
            filesystems.append({"label": fs.label, "provenance": fs.provenance, "hostname": hostname,
                                "users": [h.username for h in homes]})
            log.info("file system %s: %s (host %s)", fs.label, fs.provenance, hostname or "unknown")
            jobs: list[tuple[ArtifactSpec | None, str]] = []
            loose = source.kind == "loose"  # a LooseSource (not imported: images never need it)
            if loose:
                jobs += [(None, p) for p in source.patterns()]  # type: ignore[attr-defined]
            else:
                jobs += [(spec, pattern) for spec in specs for raw in spec.paths
                         for pattern in expand_path(raw, homes)]
            jobs += [(None, p) for p in extra_paths]
            # Taken before the artifact globs list these directories, so that no listing can
            # touch their access times first; written after the files, in walk order.
            position = f"{fs.label}: Maildir folders"
            folders = [] if loose else maildir_directories(
                fs, specs, homes, warnings)
            for spec, pattern in jobs:
                name = spec.name if spec else (LOOSE if loose else AD_HOC)
                position = f"{fs.label}:{pattern}"
                for item in glob(fs, pattern):
                    ctx = CollectContext(
                        artifact=name, category=spec.category if spec else "unknown",
                        pattern=pattern, parsers=spec.parsers if spec else (),
                        filesystem=fs.label)
                    if isinstance(item, GlobHit):
                        position = f"{fs.label}:{item.entry.location}"
                        ctx.user, ctx.home = owner_of(item.entry.location, homes)
                        line = writer.add_file(item.entry, ctx)
                        if line is not None:
                            bar.update(1)
                            log.info("%s %s (%s)", line["outcome"], item.entry.location,
                                     line["reason"] or name)
                    else:
                        writer.add_missing(ctx, item.reason)
                        log.info("missing %s: %s", pattern, item.reason)
            for spec, pattern, entry in folders:
                ctx = CollectContext(artifact=spec.name, category=spec.category, pattern=pattern,
                                     parsers=spec.parsers, filesystem=fs.label)
                ctx.user, ctx.home = owner_of(entry.location, homes)
                if writer.add_directory(entry, ctx) is not None:
                    log.info("directory %s (%s)", entry.location, spec.name)
            position = f"{fs.label}: carving unallocated blocks"
            if carve_budget > 0:
                warnings += carve_filesystem(fs, writer, specs, homes, quiet=quiet, budget=carve_budget)
        warnings += source.warnings()
    except KeyboardInterrupt:
        # Publish what is complete (every manifest line so far describes a finished file) and
        # say where the run stopped; the interrupted file's own copy was never renamed in.
        bar.close()
        log.warning("interrupted while collecting %s", position)
        writer.sweep_partials()
        writer.close(report(interrupted=True))
        raise
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    for warning in warnings:
        log.warning("%s", warning)
    return writer.close(report(interrupted=False))


def _literal(pattern: str) -> str | None:
    """The path a pattern prefix names, with ``[*]``-style escapes undone; None if it globs."""
    if any(char in _ESCAPED.sub("", pattern) for char in "*?["):
        return None
    return _ESCAPED.sub(lambda match: match.group(1), pattern)


def maildir_roots(spec: ArtifactSpec, homes: list[UserHome]) -> list[tuple[str, str]]:
    """(pattern, root) of each Maildir tree a spec searches: the literal part before ``/**``."""
    roots: dict[str, str] = {}
    for raw in spec.paths:
        for pattern in expand_path(raw, homes):
            head, found, _ = pattern.partition("/**")
            root = _literal(head) if found and head else None
            if root:
                roots.setdefault(root, f"{head}/**")
    return [(pattern, root) for root, pattern in roots.items()]


def maildir_directories(fs: FileSystemView, specs: Sequence[ArtifactSpec], homes: list[UserHome],
                        warnings: list[str]) -> list[tuple[ArtifactSpec, str, SourceFile]]:
    """Every Maildir folder under the Maildir artifacts' roots, each followed by its cur/new/tmp.

    A folder is a directory holding ``cur``, ``new`` or ``tmp``. Their mtimes move with every
    delivery and every expunge, so they date removals that left no file behind. The walk is
    depth-first in name order (deterministic), never follows symbolic links, and stops at the
    depth limit of the globs; a directory it cannot read is a warning.
    """
    found: list[tuple[ArtifactSpec, str, SourceFile]] = []
    seen: set[str] = set()
    for spec in specs:
        if not MAILDIR_PARSERS.intersection(spec.parsers):
            continue
        for pattern, root in maildir_roots(spec, homes):
            try:
                entry = fs.stat(root)
            except OSError as exc:
                warnings.append(f"Maildir folder times: {fs.label}:{root} unreadable: {exc}")
                continue
            if entry is not None and entry.kind == "dir" and not entry.deleted:
                for directory in _maildir_walk(fs, entry, 0, warnings):
                    if directory.location not in seen:
                        seen.add(directory.location)
                        found.append((spec, pattern, directory))
    return found


def _maildir_walk(fs: FileSystemView, directory: SourceFile, depth: int,
                  warnings: list[str]) -> list[SourceFile]:
    if depth >= MAX_RECURSION_DEPTH:
        warnings.append(f"Maildir folder times: recursion limit {MAX_RECURSION_DEPTH} reached under "
                        f"{fs.label}:{directory.location}")
        return []
    try:
        children = sorted((c for c in fs.list_dir(directory.location) if c.kind == "dir"),
                          key=lambda child: child.name)
    except OSError as exc:
        warnings.append(f"Maildir folder times: {fs.label}:{directory.location} unreadable: {exc}")
        return []
    subdirs = {child.name: child for child in children if child.name in MAILDIR_SUBDIRS}
    out = [directory, *(subdirs[name] for name in MAILDIR_SUBDIRS if name in subdirs)] if subdirs else []
    for child in children:
        if child.name not in subdirs:
            out += _maildir_walk(fs, child, depth + 1, warnings)
    return out
