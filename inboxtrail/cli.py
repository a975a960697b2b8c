"""The ``inboxtrail`` command: ``run``, ``collect``, ``parse``, ``timeline``, ``verify``, ``list``.

``main(argv)`` is the only entry point; domain errors become a message on stderr and an exit
code here and nowhere else.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector import __version__
from collector.artifacts import load_artifacts
from collector.atomic import atomic_open
from collector.bundle import REPORT, reset_bundle
from collector.bundle_zip import bundle_directory, is_zip_bundle, staging_directory, zip_directory
from collector.collect import collect
from collector.errors import InboxtrailError, OutputExistsError, VerificationError
from collector.opener import open_source
from collector.source import Source
from collector.unallocated import DEFAULT_BUDGET_SECONDS
from collector.verify import verify_bundle
from inboxtrail.logsetup import RunLog
from parsers import REGISTRY
from parsers.engine import RECORDS, parse_bundle
from timeline.build import (
    L2TCSV,
    TIMESKETCH_CSV,
    TIMESKETCH_JSONL,
    TimelineOptions,
    build_timeline,
    parse_time_option,
)
from timeline.findings import FINDINGS, FINDINGS_HTML, Evidence, write_findings
from timeline.runs import prepare_runs, remove_runs

log = logging.getLogger("inboxtrail.cli")

EXIT_CODES = """exit codes:
  0    success
  1    verify found a changed, missing or unlisted file
  2    usage error (bad option or argument)
  3    source not found, unreadable or not a recognised image
  4    output directory holds another run (use --force to replace it)
  5    other error (malformed bundle or records, bad artifact or rule file)
  130  interrupted (Ctrl-C / SIGTERM); outputs already published stay complete
"""


def _source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="?", help="disk image, mounted directory, artifact file "
                        "or folder of loose artifact files")
    parser.add_argument("--live", action="store_true", help="collect from the running host "
                        "(SOURCE, if given, is the root to use instead of /)")
    parser.add_argument("--artifacts", help="comma-separated artifact names to collect "
                        "(see `inboxtrail list artifacts`)")
    parser.add_argument("--path", action="append", default=[], metavar="GLOB",
                        help="extra path glob to collect (repeatable)")
    parser.add_argument("--force", action="store_true", help="replace a different run in OUT")
    parser.add_argument("--hash", default="sha256,md5", choices=("sha256,md5", "sha256"),
                        metavar="sha256,md5|sha256",
                        help="digests per collected file (default: sha256,md5; MD5 is the slowest part "
                             "of copying)")
    parser.add_argument("--carve-budget", type=float, default=DEFAULT_BUDGET_SECONDS, metavar="SECONDS",
                        help="seconds per file system for carving deleted mail and event-log chunks out "
                             f"of unallocated blocks (default: {DEFAULT_BUDGET_SECONDS:.0f}; 0: off)")
    parser.add_argument("--vss", default="none", metavar="none|all|N,M",
                        help="NTFS Volume Shadow Copies to collect too (default: none)")
    parser.add_argument("--password", action="append", default=[],
                        help="password for an encrypted volume (BitLocker, FileVault, LUKS)")
    parser.add_argument("--recovery-password", action="append", default=[],
                        help="BitLocker recovery password")
    parser.add_argument("--credential", action="append", default=[], metavar="TYPE:VALUE",
                        help="other volume credential, e.g. startup_key:/path/key.bek")


def _scheduler_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="run the parse and sort stages on this Dask scheduler (extra: dask)")


def _timeline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tz", default="UTC", help="time zone for l2tcsv (Timesketch files stay UTC)")
    parser.add_argument("--since", type=parse_time_option, metavar="TIME",
                        help="only rows at or after TIME (ISO 8601, UTC unless an offset is given)")
    parser.add_argument("--until", type=parse_time_option, metavar="TIME",
                        help="only rows at or before TIME")
    parser.add_argument("--evidence-only", action="store_true",
                        help="only tagged rows and the rows of the same host around them")
    parser.add_argument("--context-minutes", type=int, default=10,
                        help="with --evidence-only: minutes of context kept around tagged rows")


def _workers(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("--workers must be at least 1")
    return value


def _options(args: argparse.Namespace) -> TimelineOptions:
    return TimelineOptions(tz=args.tz, since=args.since, until=args.until,
                           evidence_only=args.evidence_only, context_seconds=args.context_minutes * 60)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="inboxtrail", epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Collect mail-clearing evidence (ATT&CK T1070.008) and build a super-timeline.")
    parser.add_argument("--version", action="version", version=f"inboxtrail {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="collect, parse and build the timeline in one go",
                         epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_options(run)
    run.add_argument("-o", "--output", required=True, type=Path, help="output directory")
    _timeline_options(run)
    run.add_argument("--workers", type=_workers, default=os.cpu_count() or 1,
                     help="parser processes (default: the number of cores); output is identical for any N")
    _scheduler_option(run)
    run.add_argument("--timesketch", metavar="URL",
                     help="upload timeline.jsonl to this Timesketch server (extra: timesketch; "
                          "password in TIMESKETCH_PASSWORD)")
    run.add_argument("--timesketch-user", default=os.environ.get("USER", ""), help="Timesketch user")
    run.add_argument("--timesketch-sketch", type=int, help="add to this sketch id (default: a new sketch)")

    col = sub.add_parser("collect", help="acquire artifacts into a bundle directory",
                         epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _source_options(col)
    col.add_argument("-o", "--output", required=True, type=Path,
                     help="bundle directory, or a file name ending in .zip for a zip bundle")

    par = sub.add_parser("parse", help="parse a bundle into records.jsonl", epilog=EXIT_CODES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    par.add_argument("bundle", help="bundle (directory, .zip, or with --scheduler a URL such as "
                     "s3://bucket/case/bundle) written by collect")
    par.add_argument("-o", "--output", required=True, type=Path, help="directory for records.jsonl")
    par.add_argument("--workers", type=_workers, default=os.cpu_count() or 1,
                     help="parser processes (default: the number of cores)")
    _scheduler_option(par)

    tim = sub.add_parser("timeline", help="build the super-timeline from records.jsonl",
                         epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    tim.add_argument("records", nargs="+", type=Path,
                     help="records.jsonl files or output directories that hold one")
    tim.add_argument("-o", "--output", required=True, type=Path, help="output directory")
    tim.add_argument("--workers", type=_workers, default=os.cpu_count() or 1,
                     help="processes that format rows when they must be formatted again (default: the "
                          "number of cores); output is identical for any N")
    _scheduler_option(tim)
    _timeline_options(tim)

    ver = sub.add_parser("verify", help="re-hash a bundle against its manifest", epilog=EXIT_CODES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    ver.add_argument("bundle", type=Path)

    lst = sub.add_parser("list", help="show the artifacts or parsers that exist")
    lst.add_argument("what", choices=("artifacts", "parsers", "rules"))
    for command in (run, col, par, tim, ver, lst):  # also after the command: `run IMG -o OUT -q`
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                             help="no progress bars or notes")
    return parser


def _check_output(out: Path, report_path: Path, source: str, force: bool) -> None:
    """Refuse to mix two runs in one directory unless --force."""
    if not out.exists() or not any(out.iterdir()):
        return
    previous = None
    if report_path.is_file():
        try:
            previous = json.loads(report_path.read_text(encoding="utf-8")).get("source")
        except (OSError, json.JSONDecodeError):
            previous = None
    if previous == source or force:
        return
    what = f"a run on {previous}" if previous else "other files"
    raise OutputExistsError(f"{out} already holds {what}; choose another directory or use --force")


def _open(args: argparse.Namespace) -> Source:
    credentials: list[tuple[str, object]] = [("password", p) for p in args.password]
    credentials += [("recovery_password", p) for p in args.recovery_password]
    for item in args.credential:
        kind, _, value = item.partition(":")
        credentials.append((kind, value))
    return open_source(args.source, live=args.live, vss=args.vss, credentials=credentials)


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)


def _collect_options(args: argparse.Namespace) -> dict[str, Any]:
    """The collection options ``run`` and ``collect`` share."""
    return {"hashes": tuple(args.hash.split(",")), "carve_budget": max(0.0, args.carve_budget)}


def cmd_run(args: argparse.Namespace) -> int:
    out: Path = args.output
    source = _open(args)
    stage = "collect"
    try:
        _check_output(out, out / "bundle" / REPORT, source.description, args.force)
        with RunLog(out, args.quiet):
            log.info("inboxtrail %s run %s -> %s", __version__, source.description, out)
            reset_bundle(out / "bundle")
            artifacts = args.artifacts.split(",") if args.artifacts else None
            report = collect(source, out / "bundle", artifacts=artifacts, extra_paths=args.path,
                             quiet=args.quiet, **_collect_options(args))
            stage = "parse"
            parsed = _parse(out / "bundle", out, args, evidence=True)
            stage = "timeline"
            built = _timeline([out / RECORDS], out, args)
            remove_runs(out / RECORDS)  # the timeline is written: no need to keep its rows twice
            stage = "findings"
            result, findings = write_findings(out / RECORDS, out, evidence=parsed.get("observed"))
    except KeyboardInterrupt:
        if stage != "collect":
            _mark_interrupted(out / "bundle" / REPORT, stage)
        raise
    finally:
        source.close()
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items() if v)
    _say(args, f"collected: {counts} -> {out / 'bundle'}")
    _say(args, f"parsed: {parsed['records']} records, {parsed['tagged']} tagged, "
               f"{parsed['warnings']} warnings -> {out / RECORDS}")
    _say(args, f"timeline: {built['rows']} rows -> {out / TIMESKETCH_CSV}, {out / TIMESKETCH_JSONL}, "
               f"{out / L2TCSV}")
    _say(args, f"findings: mail clearing {result} ({len(findings)} tagged records) -> {out / FINDINGS}, "
               f"{out / FINDINGS_HTML}")
    for finding in findings[:20]:
        _say(args, f"  - {finding['message']}  [{', '.join(finding['tags'])}]")
    _say(args, f"log: {out / 'run.log'}")
    name = _timeline_name(source.description)
    if args.timesketch:
        from timeline.upload import upload_timeline

        address = upload_timeline(out / TIMESKETCH_JSONL, args.timesketch, args.timesketch_user,
                                  shlex.split(name)[0], args.timesketch_sketch)
        _say(args, f"uploaded to Timesketch: {address}")
    else:
        _say(args, "import into Timesketch with:\n  timesketch_importer --timeline_name "
                   f"{name} {out / TIMESKETCH_JSONL}")
    return 0


def _mark_interrupted(report_path: Path, stage: str) -> None:
    """Record in the bundle's report that a later stage of ``run`` was interrupted."""
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return
    report.update(interrupted=True, interrupted_at=f"{stage} stage (collection had completed)")
    with atomic_open(report_path, "w") as handle:
        json.dump(report, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def _timeline_name(description: str) -> str:
    if description.startswith("live:"):
        name = f"live {socket.gethostname()}"
    else:
        name = Path(description.rstrip("/")).name or description
    return shlex.quote(f"inboxtrail {name}")


def cmd_collect(args: argparse.Namespace) -> int:
    out: Path = args.output
    source = _open(args)
    artifacts = args.artifacts.split(",") if args.artifacts else None
    try:
        if is_zip_bundle(out):
            if out.exists() and not args.force:
                raise OutputExistsError(f"{out} exists; choose another name or use --force")
            with staging_directory(out) as staging, RunLog(None, args.quiet):
                report = collect(source, staging, artifacts=artifacts, extra_paths=args.path,
                                 quiet=args.quiet, **_collect_options(args))
                zip_directory(staging, out)
        else:
            _check_output(out, out / REPORT, source.description, args.force)
            reset_bundle(out)
            with RunLog(None, args.quiet):
                report = collect(source, out, artifacts=artifacts, extra_paths=args.path,
                                 quiet=args.quiet, **_collect_options(args))
    finally:
        source.close()
    counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items() if v)
    _say(args, f"collected: {counts} -> {out}")
    return 0


def _parse(bundle: str | Path, out: Path, args: argparse.Namespace, evidence: bool = False) -> dict:
    """records.jsonl, then (locally) the timeline's rows formatted into sorted runs by the same
    number of worker processes, so that the timeline stage only has to merge them. With
    ``evidence``, the findings report's :class:`Evidence` is gathered while the records are
    written (``observed``), instead of by reading them again."""
    if args.scheduler:
        from timeline.distributed import parse_bundle_dask

        return parse_bundle_dask(str(bundle), out, args.scheduler, quiet=args.quiet)
    parsed = parse_bundle(bundle, out, quiet=args.quiet, workers=args.workers,
                          observer=Evidence if evidence else None)
    prepare_runs(out / RECORDS, parsed["attributes"], workers=args.workers, quiet=args.quiet)
    return parsed


def _timeline(files: list[Path], out: Path, args: argparse.Namespace) -> dict:
    if args.scheduler:
        from timeline.distributed import build_timeline_dask

        return build_timeline_dask(files, out, args.scheduler, _options(args), quiet=args.quiet)
    return build_timeline(files, out, quiet=args.quiet, options=_options(args), workers=args.workers)


def cmd_parse(args: argparse.Namespace) -> int:
    if "://" in args.bundle:  # a bundle URL every Dask worker can reach
        if not args.scheduler:
            raise InboxtrailError("a bundle URL needs --scheduler (workers read it through fsspec)")
        with RunLog(None, args.quiet):
            parsed = _parse(args.bundle, args.output, args)
    else:
        with RunLog(None, args.quiet), bundle_directory(args.bundle) as bundle:
            parsed = _parse(bundle, args.output, args)
    _say(args, f"parsed: {parsed['records']} records, {parsed['tagged']} tagged, "
               f"{parsed['warnings']} warnings -> {args.output / RECORDS}")
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    files = [p / RECORDS if p.is_dir() else p for p in args.records]
    with RunLog(None, args.quiet):
        built = _timeline(files, args.output, args)
    _say(args, f"timeline: {built['rows']} rows -> {args.output}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    result = verify_bundle(args.bundle)
    for problem in result.problems:
        print(problem, file=sys.stderr)
    if not result.ok:
        raise VerificationError(f"{len(result.problems)} problem(s) in {result.checked} files")
    _say(args, f"verified: {result.checked} files match the manifest")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "artifacts":
        for spec in load_artifacts():
            parsers = ", ".join(spec.parsers) or "-"
            print(f"{spec.name:24} {spec.category:8} {', '.join(spec.paths)}  -> {parsers}")
    elif args.what == "parsers":
        for name, cls in sorted(REGISTRY.items()):
            print(f"{name:16} {', '.join(cls.DATA_TYPES):24} {cls.DESCRIPTION}")
    else:
        from parsers.rules import default_engine

        seen = set()
        for rule in default_engine().rules:
            if rule.id not in seen:  # one id may be defined once per source
                seen.add(rule.id)
                print(f"{rule.id:36} {rule.technique:10} {rule.severity:8} {rule.title}")
    return 0


COMMANDS = {"run": cmd_run, "collect": cmd_collect, "parse": cmd_parse, "timeline": cmd_timeline,
            "verify": cmd_verify, "list": cmd_list}


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM is handled like Ctrl-C: stop, keep what is complete, publish nothing half-done."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    for stream in (sys.stdout, sys.stderr):  # evidence text may hold undecodable bytes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    if args.command in ("run", "collect") and not args.source and not args.live:
        print("inboxtrail: error: a SOURCE (or --live) is required", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return COMMANDS[args.command](args)
    except InboxtrailError as exc:
        print(f"inboxtrail: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("inboxtrail: interrupted; published outputs are complete, others were not written",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
