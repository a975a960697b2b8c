"""Acquisition: walk every file system of a source with the artifact specs into a bundle."""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector import __version__
from collector.artifacts import ArtifactSpec, expand_path, load_artifacts, owner_of, read_hostname, user_homes
from collector.bundle import BundleWriter, CollectContext
from collector.globbing import GlobHit, glob
from collector.loose import LooseSource
from collector.progress import progress
from collector.source import Source

log = logging.getLogger("inboxtrail.collect")

AD_HOC = "AdHocPath"
LOOSE = "LooseFiles"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def collect(source: Source, bundle_dir: str | Path, artifacts: Sequence[str] | None = None,
            extra_paths: Sequence[str] = (), quiet: bool = False) -> dict[str, Any]:
    """Collect every artifact (and ``extra_paths``) from ``source`` into ``bundle_dir``.

    Returns:
        The report written to ``report.json``.
    """
    started = _now()
    writer = BundleWriter(Path(bundle_dir))
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
            homes = user_homes(fs)
            hostname = read_hostname(fs)
            filesystems.append({"label": fs.label, "provenance": fs.provenance, "hostname": hostname,
                                "users": [h.username for h in homes]})
            log.info("file system %s: %s (host %s)", fs.label, fs.provenance, hostname or "unknown")
            jobs: list[tuple[ArtifactSpec | None, str]] = []
            if isinstance(source, LooseSource):
                jobs += [(None, p) for p in source.patterns()]
            else:
                jobs += [(spec, pattern) for spec in specs for raw in spec.paths
                         for pattern in expand_path(raw, homes)]
            jobs += [(None, p) for p in extra_paths]
            for spec, pattern in jobs:
                name = spec.name if spec else (LOOSE if isinstance(source, LooseSource) else AD_HOC)
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
