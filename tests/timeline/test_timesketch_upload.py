"""`inboxtrail run --timesketch URL` against a real Timesketch server on loopback.

The server is Timesketch's own Flask app (``timesketch.app.create_app``) in a subprocess, with its
real login (CSRF, password check), sketch and upload API, a SQLite database, the user made by
``tsctl create-user``, and Celery on kombu's filesystem broker. The client side is the real path:
``inboxtrail run`` -> ``timeline.upload`` -> timesketch-api-client + timesketch-import-client.

What this shows: the examiner logs in, the sketch is created, the server records a search index
and a timeline of that name in its database, and the indexing task the upload endpoint queues
(``run_csv_jsonl``, read back from the broker folder) carries every row of ``OUT/timeline.jsonl``,
unchanged except that the import client re-spells ``datetime`` (same instant), and the rows pass
the worker's own validator. What it cannot show: a Celery worker running that task, i.e. the rows
being indexed into OpenSearch and becoming searchable in the sketch, nor analyzers. OpenSearch is
not available here (not packaged for Debian, not on PyPI), so the server's OpenSearch host points
at a closed port and nothing ever consumes the queued task.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from collector.errors import InboxtrailError
from inboxtrail.cli import main
from tests.conftest import LINUX_IMAGE
from timeline.upload import upload_timeline

# Runs in the server subprocess, so Timesketch's globals (engine, Celery app, settings in the
# environment) never touch the test process. Exit 3 means a server dependency is missing.
_SERVER = r"""
import os, sys
config, port_file = sys.argv[1:3]
os.environ["TIMESKETCH_SETTINGS"] = config
try:
    from timesketch.app import create_app
    from timesketch.tsctl import cli
    from werkzeug.serving import make_server
except ImportError as exc:
    print(f"Timesketch server dependency missing: {exc}", file=sys.stderr)
    sys.exit(3)
cli.main(["create-user", os.environ["TS_USER"], "--password", os.environ["TS_PASSWORD"]],
         prog_name="tsctl", standalone_mode=False)
server = make_server("127.0.0.1", 0, create_app(config))
with open(port_file + ".tmp", "w") as handle:
    handle.write(str(server.server_port))
os.replace(port_file + ".tmp", port_file)
server.serve_forever()
"""

_INDEX_TASK = "timesketch.lib.tasks.run_csv_jsonl"
_START_TIMEOUT = 180.0  # seconds: importing the server's dependencies is slow on a busy host


@dataclass(frozen=True)
class Server:
    url: str
    user: str
    password: str
    database: Path
    broker: Path
    log: Path

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Rows from the server's own database, opened read-only."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as conn:
            return conn.execute(sql, params).fetchall()

    def queued_index_tasks(self) -> list[list]:
        """Positional arguments of every indexing task the server handed to Celery."""
        tasks = []
        for path in sorted(self.broker.glob("*.msg")):
            message = json.loads(path.read_text(encoding="utf-8"))
            if message["headers"]["task"] == _INDEX_TASK:
                args, _kwargs, _options = json.loads(base64.b64decode(message["body"]))
                tasks.append(args)
        return tasks


def _config(state: Path) -> Path:
    """A Timesketch config: SQLite, uploads on, filesystem broker, OpenSearch on a closed port."""
    for name in ("upload", "broker"):
        (state / name).mkdir()
    settings = {
        "SECRET_KEY": "test-only-secret",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{state / 'timesketch.db'}",
        "OPENSEARCH_HOSTS": [{"host": "127.0.0.1", "port": 9}],
        "UPLOAD_ENABLED": True,
        "UPLOAD_FOLDER": str(state / "upload"),
        "CELERY_BROKER_URL": "filesystem://",
        "BROKER_TRANSPORT_OPTIONS": {"data_folder_in": str(state / "broker"),
                                     "data_folder_out": str(state / "broker")},
        "AUTO_SKETCH_ANALYZERS": [],
    }
    config = state / "timesketch.conf"
    config.write_text("".join(f"{key} = {value!r}\n" for key, value in settings.items()), encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """The real Timesketch web app serving on a free loopback port until the module is done."""
    pytest.importorskip("timesketch_import_client", reason="timesketch extra not installed")
    state = tmp_path_factory.mktemp("timesketch")
    config, port_file, log = _config(state), state / "port", state / "server.log"
    env = {**os.environ, "TS_USER": "examiner", "TS_PASSWORD": "correct horse", "PYTHONUNBUFFERED": "1"}
    env.pop("TIMESKETCH_SETTINGS", None)
    with log.open("wb") as log_handle:
        proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(config), str(port_file)],
                                cwd=state, env=env, stdout=log_handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not port_file.exists():
            if proc.poll() is not None:
                output = log.read_text(encoding="utf-8", errors="replace")
                if proc.returncode == 3:
                    pytest.skip(output.strip().splitlines()[-1])
                pytest.fail(f"Timesketch server exited with {proc.returncode}:\n{output[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"Timesketch server did not start in {_START_TIMEOUT:.0f} s")
            time.sleep(0.1)
        yield Server(url=f"http://127.0.0.1:{port_file.read_text()}", user=env["TS_USER"],
                     password=env["TS_PASSWORD"], database=state / "timesketch.db",
                     broker=state / "broker", log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _rows(jsonl: Path) -> list[dict]:
    with jsonl.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _same_instant(row: dict) -> dict:
    """The row with ``datetime`` as an instant: the import client re-spells it via isoformat()."""
    return {**row, "datetime": datetime.fromisoformat(row["datetime"])}


def test_run_uploads_every_row_to_a_real_timesketch(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TIMESKETCH_PASSWORD", server.password)
    out = tmp_path / "out"
    assert main(["run", str(LINUX_IMAGE), "-o", str(out), "--timesketch", server.url,
                 "--timesketch-user", server.user]) == 0, server.log.read_text(encoding="utf-8")
    printed = capsys.readouterr().out
    address = re.search(r"^uploaded to Timesketch: (\S+)$", printed, re.MULTILINE)
    assert address, printed
    sketch_id = int(re.fullmatch(re.escape(server.url) + r"/sketch/(\d+)/", address.group(1)).group(1))

    # The server's database: the sketch, owned by the examiner, holding one timeline whose
    # search index bears the timeline's name.
    ((sketch_name, owner),) = server.query(
        "SELECT sketch.name, user.username FROM sketch JOIN user ON user.id = sketch.user_id "
        "WHERE sketch.id = ?", sketch_id)
    assert owner == server.user and LINUX_IMAGE.name in sketch_name
    ((timeline_id, timeline_name, index_name, index_label),) = server.query(
        "SELECT timeline.id, timeline.name, searchindex.index_name, searchindex.name FROM timeline "
        "JOIN searchindex ON searchindex.id = timeline.searchindex_id WHERE timeline.sketch_id = ?",
        sketch_id)
    assert timeline_name == index_label == sketch_name
    assert server.query("SELECT data_label, provider FROM datasource WHERE timeline_id = ?",
                        timeline_id) == [("jsonl", "Importer library")]

    # What the server handed to its indexing worker: every row of timeline.jsonl, nothing else.
    tasks = [args for args in server.queued_index_tasks() if args[3] == index_name]
    assert tasks and all(args[2] == timeline_name and args[5] == timeline_id for args in tasks)
    received = [json.loads(line) for args in tasks for line in args[1].splitlines()]
    written = _rows(out / "timeline.jsonl")
    assert len(received) == len(written) > 100
    assert [_same_instant(row) for row in received] == [_same_instant(row) for row in written]
    # ... and the worker's own reader would take every one of them.
    validator = pytest.importorskip("timesketch.lib.utils")
    validated = [row for args in tasks for row in validator.read_and_validate_jsonl(io.StringIO(args[1]))]
    assert len(validated) == len(written)


def test_wrong_password_is_a_clear_error_and_keeps_the_outputs(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TIMESKETCH_PASSWORD", server.password + " but wrong")
    sketches = server.query("SELECT id FROM sketch")
    out = tmp_path / "out"
    assert main(["-q", "run", str(LINUX_IMAGE), "-o", str(out), "--timesketch", server.url,
                 "--timesketch-user", server.user]) == 5
    err = capsys.readouterr().err
    assert f"Timesketch upload to {server.url} failed" in err and "Invalid username or password" in err
    assert "Traceback" not in err
    assert server.query("SELECT id FROM sketch") == sketches  # the server was not changed
    for name in ("records.jsonl", "timeline.jsonl", "timeline.csv", "timeline.l2t.csv", "findings.md"):
        assert (out / name).stat().st_size > 0, name
    with (out / "timeline.csv").open(encoding="utf-8", newline="") as handle:
        csv_rows = sum(1 for _ in csv.DictReader(handle))
    assert len(_rows(out / "timeline.jsonl")) == csv_rows > 100  # both Timesketch files complete


def test_missing_sketch_is_named_before_any_upload(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TIMESKETCH_PASSWORD", server.password)
    missing = 1 + max((row[0] for row in server.query("SELECT id FROM sketch")), default=0)
    jsonl = _one_row(tmp_path)
    queued = len(server.queued_index_tasks())
    with pytest.raises(InboxtrailError, match=f"sketch {missing} does not exist or {server.user} may not"):
        upload_timeline(jsonl, server.url, server.user, "t", missing)
    assert len(server.queued_index_tasks()) == queued


def _one_row(tmp_path: Path) -> Path:
    jsonl = tmp_path / "timeline.jsonl"
    jsonl.write_text(json.dumps({"datetime": "2024-01-01T00:00:00+00:00", "timestamp": 1704067200000000,
                                 "timestamp_desc": "Event Time", "message": "m"}) + "\n", encoding="utf-8")
    return jsonl


def test_unset_password_is_named(server, tmp_path, monkeypatch):
    monkeypatch.delenv("TIMESKETCH_PASSWORD", raising=False)
    with pytest.raises(InboxtrailError, match=r"Invalid username or password. \(TIMESKETCH_PASSWORD is not"):
        upload_timeline(_one_row(tmp_path), server.url, server.user, "t")


def test_empty_timeline_creates_no_sketch(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TIMESKETCH_PASSWORD", server.password)
    (tmp_path / "timeline.jsonl").write_bytes(b"")
    sketches = server.query("SELECT id FROM sketch")
    with pytest.raises(InboxtrailError, match="has no rows"):
        upload_timeline(tmp_path / "timeline.jsonl", server.url, server.user, "t")
    assert server.query("SELECT id FROM sketch") == sketches


def test_missing_extra_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "timesketch_import_client", None)  # what an absent package raises
    with pytest.raises(InboxtrailError, match=re.escape("pip install -e '.[timesketch]'")):
        upload_timeline(tmp_path / "timeline.jsonl", "http://127.0.0.1:9", "examiner", "t")
