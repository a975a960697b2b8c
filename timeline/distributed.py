"""The parse and sort stages on a Dask cluster (optional extra: ``pip install -e '.[dask]'``).

What moves over the network: the manifest entry of each file out to a worker (one task per
artifact file), the file's records back to the client as JSON lines; for the timeline, one
records shard per host out, one sorted run per host written by a worker to the output
directory. What stays on the client: the manifest, pass 1 of the timeline (column names), and
the final k-way merge of the per-host runs (:func:`timeline.runs.merge_runs`). Workers read the
bundle through fsspec, so a path every worker can reach (NFS) or a URL (``s3://...``) works; the
output directory must be reachable by the workers as well, for the sorted runs.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collector.bundle import MANIFEST, REPORT
from collector.errors import BundleError, InboxtrailError
from parsers import engine as parse_engine
from parsers.base import REGISTRY
from parsers.record import loads_record
from parsers.targets import StateIndex
from timeline.build import TimelineOptions, plan
from timeline.runs import format_runs, merge_runs


def _client(scheduler: str) -> Any:
    try:
        from distributed import Client
    except ImportError as exc:  # the optional extra is missing
        raise InboxtrailError("--scheduler needs the dask extra: pip install -e '.[dask]'") from exc
    try:
        return Client(scheduler, timeout="30s")
    except OSError as exc:
        raise InboxtrailError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc


def _is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def _read_text(url: str) -> str:
    import fsspec

    with fsspec.open(url, "r", encoding="utf-8") as handle:
        return handle.read()


@contextlib.contextmanager
def _local_bundle(bundle: str, entry: dict[str, Any], companions: list[str]) -> Iterator[Path]:
    """The bundle as a local directory holding (at least) this entry's file, the files its parsers
    also read (``Parser.companions``) and the manifest."""
    if not _is_url(bundle):
        yield Path(bundle.removeprefix("file://"))
        return
    import fsspec

    with tempfile.TemporaryDirectory(prefix="inboxtrail-worker-") as tmp:
        for relative in dict.fromkeys((MANIFEST, entry.get("bundle_path"), *companions)):
            if relative:
                target = Path(tmp) / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with fsspec.open(f"{bundle}/{relative}", "rb") as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
        yield Path(tmp)


def _companions(entry: dict[str, Any], manifest: list[dict[str, Any]]) -> list[str]:
    """The other bundle files the parsers of ``entry`` read (see ``Parser.companions``)."""
    paths: dict[str, None] = {}
    for name in entry.get("parsers") or ():
        parser = REGISTRY.get(name)
        if parser is not None:
            paths.update(dict.fromkeys(parser.companions(entry, manifest)))
    return list(paths)


def _parse_remote(bundle: str, entry: dict[str, Any], hosts: dict[str, str], companions: list[str],
                  state: StateIndex) -> tuple[list[bytes], dict, list, int, list[str]]:
    """Worker task: the records of one manifest entry, as ``records.jsonl`` lines."""
    parse_engine._STATE = state
    ctx = parse_engine._context(entry, hosts)
    stats: Counter = Counter()
    lines: list[bytes] = []
    names: set[str] = set()
    tagged = 0
    with _local_bundle(bundle, entry, companions) as root:
        for record in parse_engine.records_of_entry(root, entry, ctx, stats):
            lines.append(record.to_json_bytes())
            names.update(record.attributes)
            tagged += bool(record.tags)
    return lines, dict(stats), ctx.warnings, tagged, sorted(names)


def parse_bundle_dask(bundle: str, out_dir: Path, scheduler: str, quiet: bool = False) -> dict[str, Any]:
    """The parse stage with one Dask task per collected file; same ``records.jsonl`` as locally."""
    bundle = bundle.rstrip("/")
    try:
        manifest = [json.loads(line) for line in _read_text(f"{bundle}/{MANIFEST}").splitlines()]
        report = json.loads(_read_text(f"{bundle}/{REPORT}"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{bundle} is not a readable inboxtrail bundle: {exc}") from exc
    hosts = {fs["label"]: fs["hostname"] for fs in report.get("filesystems", ()) if fs.get("hostname")}
    out_dir.mkdir(parents=True, exist_ok=True)
    client = _client(scheduler)
    try:
        state = client.scatter(StateIndex(manifest), broadcast=True)
        companions = [_companions(entry, manifest) for entry in manifest]
        futures = client.map(_parse_remote, [bundle] * len(manifest), manifest,
                             [hosts] * len(manifest), companions, state=state, pure=False)

        def results() -> Iterator[parse_engine.FileResult]:
            for future in futures:  # manifest order, whatever order the workers finish in
                result = future.result()
                future.release()
                yield result

        return parse_engine.write_results(results(), out_dir, len(manifest), quiet=quiet)
    finally:
        client.close()


def _sort_shard(shard: str, directory: str, columns: list[str], options: TimelineOptions,
                tagged: dict[str, list[int]]) -> list[str]:
    """Worker task: one host's records formatted into rows and sorted into run files."""
    Path(directory).mkdir()
    runs, _, _ = format_runs([Path(shard)], Path(directory), columns, options, tagged)
    return [str(run) for run in runs]


def build_timeline_dask(records_files: list[Path], out_dir: Path, scheduler: str,
                        options: TimelineOptions, quiet: bool = False) -> dict[str, Any]:
    """The timeline stage with one sort per host on the cluster and the final merge streamed here."""
    columns, tagged = plan(records_files, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".timeline.", suffix=".part", dir=out_dir))
    client = _client(scheduler)
    try:
        shards: dict[str, Any] = {}
        try:  # split the records by host, keeping each line exactly as it is
            for path in records_files:
                with path.open("rb") as handle:
                    for line in handle:
                        host = loads_record(line).get("host") or ""
                        if host not in shards:
                            shards[host] = (work / f"shard{len(shards):05d}.jsonl").open("wb")
                        shards[host].write(line)
        finally:
            for handle in shards.values():
                handle.close()
        names = [str(work / f"shard{i:05d}.jsonl") for i in range(len(shards))]
        directories = [str(work / f"runs{i:05d}") for i in range(len(shards))]
        futures = client.map(_sort_shard, names, directories, columns=columns, options=options,
                             tagged=tagged, pure=False)
        runs = [Path(run) for future in futures for run in future.result()]
        return merge_runs(runs, out_dir, columns, quiet=quiet)
    finally:
        client.close()
        shutil.rmtree(work, ignore_errors=True)
