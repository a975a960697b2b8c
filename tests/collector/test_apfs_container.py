"""An APFS container inside a GPT volume system (``images/build_apfs_variant.sh``, mkapfs).

No tool here writes files into APFS, so the volume is empty: what this shows is that a real
APFS container, as mkapfs lays it out, is found behind EWF and GPT, its volume is opened and
walked without a warning, and an empty volume is reported as collected from, not as an error.
"""

from __future__ import annotations

import json

import pytest

from collector.collect import collect
from collector.opener import open_source
from tests.conftest import IMAGES, sha256_of

IMAGE = IMAGES / "variants" / "apfs-gpt.E01"


@pytest.fixture(scope="module")
def image():
    if not IMAGE.exists():
        pytest.skip("images/variants/apfs-gpt.E01 not built (images/build_apfs_variant.sh)")
    return IMAGE


def test_apfs_container_in_gpt_is_one_file_system(image) -> None:
    source = open_source(str(image))
    try:
        found = {fs.label: fs.provenance for fs in source.filesystems()}
        assert source.warnings() == []
    finally:
        source.close()
    assert found == {"p1-apfs1": "image:apfs-gpt.E01|EWF|GPT/p1|APFS_CONTAINER/apfs1|APFS/"}


def test_empty_apfs_volume_is_walked_without_failure(image, tmp_path) -> None:
    before = sha256_of(image)
    report = collect(open_source(str(image)), tmp_path / "b", extra_paths=["/**"], quiet=True)
    assert report["warnings"] == []
    assert report["counts"]["failed"] == 0 and report["counts"]["collected"] == 0
    assert [fs["provenance"] for fs in report["filesystems"]] == [
        "image:apfs-gpt.E01|EWF|GPT/p1|APFS_CONTAINER/apfs1|APFS/"]
    manifest = [json.loads(line) for line in (tmp_path / "b" / "manifest.jsonl").open()]
    adhoc = [m for m in manifest if m["artifact"] == "AdHocPath"]
    assert [(m["outcome"], m["filesystem"]) for m in adhoc] == [("missing", "p1-apfs1")]
    assert sha256_of(image) == before
