"""File objects for inputs too large to hold: their bytes are computed on demand, never stored."""

from __future__ import annotations

import io


class LazyFile(io.RawIOBase):
    """A read-only, seekable file of ``head + fill * length + tail`` that never holds ``fill * length``.

    It has no ``fileno()``, like a file object read out of a disk image.
    """

    def __init__(self, head: bytes, length: int, tail: bytes = b"", fill: bytes = b"A") -> None:
        super().__init__()
        self.head, self.length, self.tail, self.fill = head, length, tail, fill[0]
        self.size = len(head) + length + len(tail)
        self.position = 0
        self.name = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        count = max(0, min(len(view), self.size - self.position))
        done = 0
        while done < count:
            at = self.position + done
            if at < len(self.head):
                piece = self.head[at:at + count - done]
            elif at < len(self.head) + self.length:
                piece = bytes([self.fill]) * min(count - done, len(self.head) + self.length - at, 1 << 16)
            else:
                start = at - len(self.head) - self.length
                piece = self.tail[start:start + count - done]
            view[done:done + len(piece)] = piece
            done += len(piece)
        self.position += count
        return count


def lazy_reader(head: bytes, length: int, tail: bytes = b"", fill: bytes = b"A") -> io.BufferedReader:
    """:class:`LazyFile` behind a buffer, as parsers get from ``open()``."""
    return io.BufferedReader(LazyFile(head, length, tail, fill), buffer_size=1 << 16)
