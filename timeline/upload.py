"""Upload a timeline to a Timesketch server through the official import client.

Optional extra (``pip install -e '.[timesketch]'``): ``timesketch-api-client`` logs in and finds
or creates the sketch, ``timesketch-import-client`` streams the JSONL file in chunks, exactly as
``timesketch_importer`` does. The password comes from ``TIMESKETCH_PASSWORD`` (never from the
command line, where other users of the host could read it). Every failure becomes one
``InboxtrailError`` line; the local outputs are written before the upload starts and stay.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from collector.errors import InboxtrailError

if TYPE_CHECKING:  # the extra is optional: its types are only needed by type checkers
    from timesketch_api_client.client import TimesketchApi
    from timesketch_api_client.sketch import Sketch


def upload_timeline(jsonl: Path, url: str, username: str, timeline_name: str,
                    sketch_id: int | None = None) -> str:
    """Upload ``jsonl`` as a new timeline; return the sketch's address."""
    try:
        from timesketch_api_client import client as ts_client
        from timesketch_import_client import importer
    except ImportError as exc:
        raise InboxtrailError("--timesketch needs the timesketch extra: pip install -e '.[timesketch]'") \
            from exc
    if not _has_rows(jsonl):
        raise InboxtrailError(f"Timesketch upload skipped: {jsonl} has no rows (no sketch created)")
    password = os.environ.get("TIMESKETCH_PASSWORD", "")
    try:
        api = ts_client.TimesketchApi(url, username, password)
        sketch = _existing_sketch(api, sketch_id, url, username) if sketch_id \
            else api.create_sketch(timeline_name)
        with importer.ImportStreamer() as streamer:
            streamer.set_sketch(sketch)
            streamer.set_timeline_name(timeline_name)
            streamer.add_file(str(jsonl))
    except InboxtrailError:
        raise
    except Exception as exc:  # the client raises requests, RuntimeError and its own errors
        hint = "" if password else " (TIMESKETCH_PASSWORD is not set)"
        raise InboxtrailError(f"Timesketch upload to {url} failed: {type(exc).__name__}: {_one_line(exc)}"
                              f"{hint}") from exc
    return f"{url.rstrip('/')}/sketch/{sketch.id}/"


def _existing_sketch(api: TimesketchApi, sketch_id: int, url: str, username: str) -> Sketch:
    """The sketch ``sketch_id``, checked now: the client loads it lazily, and a missing sketch
    would otherwise surface as three retried uploads ending in a generic 404."""
    sketch = api.get_sketch(sketch_id)
    try:
        _ = sketch.name
    except Exception as exc:  # NotFoundError, or the client's error for a sketch not shared
        raise InboxtrailError(f"Timesketch upload to {url} failed: sketch {sketch_id} does not exist "
                              f"or {username} may not open it ({type(exc).__name__})") from exc
    return sketch


def _has_rows(jsonl: Path) -> bool:
    """Whether there is anything to send: the import client sends nothing for an empty file, yet
    the sketch would be created and reported as uploaded."""
    try:
        with open(jsonl, "rb") as rows:
            return bool(rows.readline().strip())
    except OSError as exc:
        raise InboxtrailError(f"Timesketch upload: cannot read {jsonl}: {exc.strerror}") from exc


def _one_line(exc: Exception) -> str:
    """The error text on one line (the client appends the server's response body verbatim)."""
    return " ".join(str(exc).split())
