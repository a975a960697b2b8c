"""Re-hash a bundle against its manifest: the examiner's proof that nothing changed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from collector.bundle import FILES_DIR, MANIFEST, read_manifest
from collector.bundle_zip import bundle_directory

_CHUNK = 1 << 20


@dataclass
class VerifyResult:
    """Outcome of a verification: counts and every problem found."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_bundle(bundle: str | Path) -> VerifyResult:
    """Check every collected file's size and SHA-256, and look for unlisted files.

    A zip bundle is verified through a temporary extraction of its members.
    """
    with bundle_directory(bundle) as root:
        return _verify_directory(root)


def _verify_directory(root: Path) -> VerifyResult:
    result = VerifyResult()
    listed: set[str] = set()
    for line in read_manifest(root):
        relative = line.get("bundle_path")
        if not relative:
            continue
        listed.add(relative)
        result.checked += 1
        path = root / relative
        if not path.is_file():
            result.problems.append(f"missing: {relative}")
            continue
        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        expected_size = line.get("size_read", line.get("size"))
        if digest.hexdigest() != line.get("sha256"):
            result.problems.append(
                f"sha256 mismatch: {relative} (manifest {line.get('sha256')}, now {digest.hexdigest()})")
        elif expected_size is not None and size != expected_size:
            result.problems.append(f"size mismatch: {relative} (manifest {expected_size}, now {size})")
    files_root = root / FILES_DIR
    if files_root.is_dir():
        for path in sorted(files_root.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if path.is_file() and relative not in listed and not path.name.endswith(".part"):
                result.problems.append(f"not in {MANIFEST}: {relative}")
    return result
