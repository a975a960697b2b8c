"""The parse and sort stages on a Dask cluster (optional extra: ``pip install -e '.[dask]'``).

What moves over the network: the manifest entry of each file out to a worker (one task per
artifact file), the file's records back to the client as JSON lines; for the timeline, one
records shard per host out, one sorted run per host written by a worker to the output
directory. What stays on the client: the manifest, pass 1 of the timeline (column names), and
the final k-way merge, which streams the per-host runs with ``heapq.merge``. Workers read the
bundle through fsspec, so a path every worker can reach (NFS) or a URL (``s3://...``) works; the
output directory must be reachable by the workers as well, for the sorted runs.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collector.bundle import MANIFEST, REPORT
from collector.errors import BundleError, InboxtrailError
from parsers import engine as parse_engine
from parsers.targets import StateIndex
from timeline.build import LineFormatter, TimelineOptions, _records, plan, write_outputs
from timeline.sort import ExternalSorter


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
def _local_bundle(bundle: str, entry: dict[str, Any]) -> Iterator[Path]:
    """The bundle as a local directory holding (at least) this entry's file and the manifest."""
    if not _is_url(bundle):
        yield Path(bundle.removeprefix("file://"))
        return
    import fsspec

    with tempfile.TemporaryDirectory(prefix="inboxtrail-worker-") as tmp:
        for relative in (MANIFEST, entry.get("bundle_path")):
            if relative:
                target = Path(tmp) / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with fsspec.open(f"{bundle}/{relative}", "rb") as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
        yield Path(tmp)


def _parse_remote(bundle: str, entry: dict[str, Any], hosts: dict[str, str],
                  state: StateIndex) -> tuple[list[str], dict, list, int]:
    """Worker task: the records of one manifest entry, as ``records.jsonl`` lines."""
    parse_engine._STATE = state
    ctx = parse_engine._context(entry, hosts)
    stats: Counter = Counter()
    lines: list[str] = []
    tagged = 0
    with _local_bundle(bundle, entry) as root:
        for record in parse_engine.records_of_entry(root, entry, ctx, stats):
            lines.append(record.to_json())
            tagged += bool(record.tags)
    return lines, dict(stats), ctx.warnings, tagged


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
        futures = client.map(_parse_remote, [bundle] * len(manifest), manifest,
                             [hosts] * len(manifest), state=state, pure=False)

        def results() -> Iterator[tuple[list[str], dict, list, int]]:
            for future in futures:  # manifest order, whatever order the workers finish in
                result = future.result()
                future.release()
                yield result

        return parse_engine.write_results(results(), out_dir, len(manifest), quiet=quiet)
    finally:
        client.close()


def _sort_shard(shard: str, run: str, columns: list[str], options: TimelineOptions,
                tagged: dict[str, list[int]]) -> str:
    """Worker task: one host's records formatted into rows and sorted into one run file."""
    formatter = LineFormatter(columns, options, tagged)
    sorter = ExternalSorter(temp_dir=os.path.dirname(run))
    for record in _records([Path(shard)]):
        for line in formatter.lines(record):
            sorter.add(line)
    with open(run, "w", encoding="utf-8", errors="surrogatepass", newline="\n") as out:
        for line in sorter.sorted_lines():
            out.write(line + "\n")
    return run


def build_timeline_dask(records_files: list[Path], out_dir: Path, scheduler: str,
                        options: TimelineOptions, quiet: bool = False) -> dict[str, Any]:
    """The timeline stage with one sort per host on the cluster and the final merge streamed here."""
    columns, tagged = plan(records_files, options)
    work = Path(tempfile.mkdtemp(prefix=".timeline.", dir=out_dir))
    client = _client(scheduler)
    try:
        shards: dict[str, Any] = {}
        try:  # split the records by host, keeping each line exactly as it is
            for path in records_files:
                with path.open(encoding="utf-8") as handle:
                    for line in handle:
                        host = json.loads(line).get("host") or ""
                        if host not in shards:
                            shards[host] = (work / f"shard{len(shards):05d}.jsonl").open(
                                "w", encoding="utf-8", newline="\n")
                        shards[host].write(line)
        finally:
            for handle in shards.values():
                handle.close()
        names = [str(work / f"shard{i:05d}.jsonl") for i in range(len(shards))]
        runs = [name.replace("shard", "run") for name in names]
        futures = client.map(_sort_shard, names, runs, columns=columns, options=options,
                             tagged=tagged, pure=False)
        finished = [future.result() for future in futures]
        with contextlib.ExitStack() as stack:
            streams = [(line[:-1] for line in stack.enter_context(
                open(run, encoding="utf-8", errors="surrogatepass", newline="\n"))) for run in finished]
            return write_outputs(heapq.merge(*streams), out_dir, columns)
    finally:
        client.close()
        shutil.rmtree(work, ignore_errors=True)
