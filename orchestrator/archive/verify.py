"""Checking a day file while it streams: gzip complete, every line a JSON object, hashed.

``StreamVerifier`` takes the file's bytes in chunks of any size and keeps constant memory: the
bytes go through ``hashlib.sha256`` and a ``zlib`` gzip decompressor (output bounded per call,
so a "gzip bomb" cannot blow up memory), decompressed text is split into lines across chunk
boundaries, and each non-empty line must parse as a JSON object. Concatenated gzip members
(allowed by RFC 1952) are followed. ``finish()`` raises ``DownloadCorrupt`` when the gzip stream
stopped short of its end (a truncated download) or when a line is not a JSON object, and returns
the size, sha256 and record count otherwise.

``verify_file`` runs the same checks over a file on disk (``orchestrator verify-archive``).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import DownloadCorrupt

# gzip wrapper only (16 + max window): a raw zlib or deflate stream is not a day file.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
# Decompressed bytes produced per decompress call at most.
_OUTPUT_STEP = 1024 * 1024
# A single record longer than this is not a Twilio record (and would cost memory).
MAX_LINE_BYTES = 16 * 1024 * 1024
# Read size when verifying a file on disk.
FILE_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class VerifiedFile:
    """What a complete, valid day file is."""

    size: int
    sha256: str
    record_count: int


class StreamVerifier:
    """Feed a day file's bytes with ``feed``; ``finish`` says whether it was whole and valid.

    ``allow_empty``: accept a body of zero bytes as an empty file (0 records). Only for a day
    Twilio reported as CompletedEmptyRecords; a gzip file of no lines is always accepted.
    ``check_lines=False`` only hashes and checks the gzip stream (faster re-verification).
    """

    def __init__(self, *, allow_empty: bool = False, check_lines: bool = True) -> None:
        self._allow_empty = allow_empty
        self._check_lines = check_lines
        self._sha = hashlib.sha256()
        self._size = 0
        self._zlib = zlib.decompressobj(_GZIP_WBITS)
        # Bytes of an unfinished line (no newline yet).
        self._partial = bytearray()
        self._records = 0
        self._line_number = 0
        self._finished = False

    @property
    def size(self) -> int:
        return self._size

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the file; raises DownloadCorrupt as soon as it is clearly bad."""
        if self._finished:
            raise RuntimeError("the verifier is finished")
        if not chunk:
            return
        self._sha.update(chunk)
        self._size += len(chunk)
        self._decompress(chunk)

    def finish(self) -> VerifiedFile:
        """The file's facts, once its last byte was fed; DownloadCorrupt if it is not whole."""
        if self._finished:
            raise RuntimeError("the verifier is finished")
        self._finished = True
        if self._size == 0:
            if self._allow_empty:
                return VerifiedFile(0, self._sha.hexdigest(), 0)
            raise DownloadCorrupt("the file is empty (not even a gzip header)")
        if not self._zlib.eof:
            raise DownloadCorrupt(
                f"the gzip stream is truncated: it ends after {self._size} bytes without its "
                "end marker"
            )
        if self._partial:
            # The last line may lack its newline.
            self._line(bytes(self._partial))
            self._partial.clear()
        return VerifiedFile(self._size, self._sha.hexdigest(), self._records)

    # ------------------------------------------------------------------ internals

    def _decompress(self, data: bytes) -> None:
        while True:
            if self._zlib.eof:
                if not data:
                    return
                # Another gzip member follows (RFC 1952 allows concatenation).
                self._zlib = zlib.decompressobj(_GZIP_WBITS)
            try:
                out = self._zlib.decompress(data, _OUTPUT_STEP)
            except zlib.error as exc:
                raise DownloadCorrupt(
                    f"not a valid gzip stream near byte {self._size}: {exc}"
                ) from None
            self._text(out)
            if self._zlib.eof:
                data = self._zlib.unused_data
                continue
            data = self._zlib.unconsumed_tail
            # A full output step may leave output pending inside zlib: ask again.
            if not data and len(out) < _OUTPUT_STEP:
                return

    def _text(self, out: bytes) -> None:
        if not out:
            return
        start = 0
        while True:
            end = out.find(b"\n", start)
            if end < 0:
                break
            if self._partial:
                self._partial += out[start:end]
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = out[start:end]
            self._line(line)
            start = end + 1
        if start < len(out):
            self._partial += out[start:]
            if len(self._partial) > MAX_LINE_BYTES:
                raise DownloadCorrupt(
                    f"line {self._line_number + 1} is longer than {MAX_LINE_BYTES} bytes"
                )

    def _line(self, line: bytes) -> None:
        self._line_number += 1
        if not line.strip():
            return
        if self._check_lines:
            try:
                value = json.loads(line)
            except ValueError:
                raise DownloadCorrupt(f"line {self._line_number} is not JSON") from None
            if not isinstance(value, dict):
                raise DownloadCorrupt(
                    f"line {self._line_number} is JSON but not an object ({type(value).__name__})"
                )
        self._records += 1


def verify_file(path: Path, *, check_lines: bool = True, allow_empty: bool = False) -> VerifiedFile:
    """Read ``path`` through a StreamVerifier (blocking; run it in a thread)."""
    verifier = StreamVerifier(check_lines=check_lines, allow_empty=allow_empty)
    with path.open("rb") as handle:
        while chunk := handle.read(FILE_CHUNK):
            verifier.feed(chunk)
    return verifier.finish()


def sha256_file(path: Path) -> tuple[int, str]:
    """Size and sha256 of ``path`` (blocking; run it in a thread)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(FILE_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
