"""The parse and sort stages on a real Dask cluster give the same bytes as a local run."""

from __future__ import annotations

from pathlib import Path

import pytest

from inboxtrail.cli import main
from tests.conftest import LINUX_IMAGE

distributed = pytest.importorskip("distributed", reason="dask extra not installed")

OUTPUTS = ("records.jsonl", "timeline.csv", "timeline.jsonl", "timeline.l2t.csv")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=50) as local:
        yield local


def test_run_on_cluster_is_byte_identical(cluster, linux_run: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert main(["-q", "run", str(LINUX_IMAGE), "--scheduler", cluster.scheduler_address,
                 "-o", str(out)]) == 0
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (linux_run / name).read_bytes(), name


def test_stages_on_cluster_with_a_bundle_url(cluster, linux_run: Path, tmp_path: Path):
    # Workers read the bundle through fsspec: "local://" stands in for s3:// or gs:// here.
    url = "local://" + str(linux_run / "bundle")
    out = tmp_path / "out"
    assert main(["-q", "parse", url, "--scheduler", cluster.scheduler_address, "-o", str(out)]) == 0
    assert (out / "records.jsonl").read_bytes() == (linux_run / "records.jsonl").read_bytes()
    assert main(["-q", "timeline", str(out), "--scheduler", cluster.scheduler_address,
                 "-o", str(out)]) == 0
    for name in OUTPUTS[1:]:
        assert (out / name).read_bytes() == (linux_run / name).read_bytes(), name


def test_bundle_url_without_scheduler_is_refused(tmp_path, capsys):
    assert main(["-q", "parse", "s3://bucket/case/bundle", "-o", str(tmp_path)]) == 5
    assert "--scheduler" in capsys.readouterr().err
