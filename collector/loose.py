"""Loose artifact files: one exported file, or a folder of them, as examiners often receive.

Nothing about such files is known from their location, so every regular file is collected with no
parser assigned; the parse stage recognises each format from its content and name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from collector.artifacts import glob_escape
from collector.errors import SourceNotFoundError
from collector.live import DirectoryFileSystem
from collector.source import FileSystemView, Source


class LooseSource(Source):
    """A single artifact file or a folder of loose artifact files."""

    kind = "loose"

    def __init__(self, path: str) -> None:
        if not os.path.exists(path):
            raise SourceNotFoundError(f"source not found: {path}")
        self.path = os.path.abspath(path)
        self.description = self.path
        self.single_file = os.path.isfile(self.path)

    def filesystems(self) -> Iterator[FileSystemView]:
        root = os.path.dirname(self.path) if self.single_file else self.path
        yield DirectoryFileSystem(root, label="loose", provenance=f"loose:{root}")

    def patterns(self) -> list[str]:
        """The patterns that select the loose files under the view's root."""
        if self.single_file:
            return ["/" + glob_escape(os.path.basename(self.path))]
        return ["/**"]
