"""Upload a timeline to a Timesketch server through the official import client.

Optional extra (``pip install -e '.[timesketch]'``): ``timesketch-api-client`` logs in and finds
or creates the sketch, ``timesketch-import-client`` streams the JSONL file in chunks, exactly as
``timesketch_importer`` does. The password comes from ``TIMESKETCH_PASSWORD`` (never from the
command line, where other users of the host could read it).
"""

from __future__ import annotations

import os
from pathlib import Path

from collector.errors import InboxtrailError


def upload_timeline(jsonl: Path, url: str, username: str, timeline_name: str,
                    sketch_id: int | None = None) -> str:
    """Upload ``jsonl`` as a new timeline; return the sketch's address."""
    try:
        from timesketch_api_client import client as ts_client
        from timesketch_import_client import importer
    except ImportError as exc:
        raise InboxtrailError("--timesketch needs the timesketch extra: pip install -e '.[timesketch]'") \
            from exc
    password = os.environ.get("TIMESKETCH_PASSWORD", "")
    try:
        api = ts_client.TimesketchApi(url, username, password)
        sketch = api.get_sketch(sketch_id) if sketch_id else api.create_sketch(timeline_name)
        with importer.ImportStreamer() as streamer:
            streamer.set_sketch(sketch)
            streamer.set_timeline_name(timeline_name)
            streamer.add_file(str(jsonl))
    except InboxtrailError:
        raise
    except Exception as exc:  # the client raises requests, RuntimeError and its own errors
        raise InboxtrailError(f"Timesketch upload to {url} failed: {type(exc).__name__}: {exc}") from exc
    return f"{url.rstrip('/')}/sketch/{sketch.id}/"
