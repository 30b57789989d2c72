"""The click spool: an append-only local file per server process, written before the 302.

Why a file and not the database: a click must survive the serving process being killed right
after its redirect is sent, and the database may be slow or away. One ``write(2)`` of a
framed record to an ``O_APPEND`` file puts it in the kernel's page cache, which outlives the
process (SIGKILL included) without an fsync; the writer thread then stores records in the
database in batches and moves a checkpoint past them.

Files:
  ``<name>.clicks``  frames: magic ``CK``, payload length, CRC-32, payload (JSON)
  ``<name>.done``    checkpoint: byte offset up to which every frame is in the database

Each live process holds an exclusive ``flock`` on its own ``.clicks`` file for its whole life.
The kernel drops that lock when the process dies, however it dies, so any other process may
then take the file over ("adopt" it), replay what lies past its checkpoint, and delete it.
Replays are harmless because every click carries its own id (see ``app.recording``).
Limits (see docs/redirector.md): the page cache does not survive a power cut or kernel
crash, and a torn last frame is ignored on replay.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import struct
import threading
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FRAME = struct.Struct(">2sII")  # magic, payload length, crc32(payload)
_MAGIC = b"CK"
_CHECKPOINT = struct.Struct(">QI")  # offset, crc32(offset)
MAX_PAYLOAD = 64 * 1024
SUFFIX = ".clicks"


class SpoolError(OSError):
    """A record could not be appended (disk full, I/O error, spool directory gone)."""


def _frame(record: Any) -> bytes:
    payload = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(payload) > MAX_PAYLOAD:
        raise SpoolError(f"record of {len(payload)} bytes is larger than {MAX_PAYLOAD}")
    return _FRAME.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True, slots=True)
class Frame:
    end: int  # offset just past this frame: the checkpoint once it is stored
    record: Any


_CHUNK = 1024 * 1024


def read_frames(fd: int, start: int, stop: int | None = None) -> Iterator[Frame]:
    """Frames from ``start`` up to ``stop`` (or the end of the file), stopping quietly at the
    first frame that is incomplete or fails its check: a tail torn by a crash.

    Reads a chunk at a time (one system call for hundreds of frames, not two per frame).
    """
    offset = start
    buffer = b""
    base = start  # file offset of buffer[0]
    while stop is None or offset < stop:
        at = offset - base
        if len(buffer) - at < _FRAME.size:
            buffer, base, at = os.pread(fd, _CHUNK, offset), offset, 0
            if len(buffer) < _FRAME.size:
                return
        magic, length, crc = _FRAME.unpack_from(buffer, at)
        if magic != _MAGIC or length > MAX_PAYLOAD:
            return
        end = at + _FRAME.size + length
        if end > len(buffer):
            buffer, base = os.pread(fd, max(_CHUNK, _FRAME.size + length), offset), offset
            at, end = 0, _FRAME.size + length
            if end > len(buffer):
                return
        payload = buffer[at + _FRAME.size : end]
        if zlib.crc32(payload) != crc:
            return
        offset = base + end
        try:
            record = json.loads(payload)
        except ValueError:
            continue  # cannot happen for a frame whose CRC matches what we wrote
        yield Frame(offset, record)


def _read_checkpoint(fd: int) -> int:
    raw = os.pread(fd, _CHECKPOINT.size, 0)
    if len(raw) != _CHECKPOINT.size:
        return 0
    offset, crc = _CHECKPOINT.unpack(raw)
    return offset if zlib.crc32(struct.pack(">Q", offset)) == crc else 0


def _write_checkpoint(fd: int, offset: int) -> None:
    os.pwrite(fd, _CHECKPOINT.pack(offset, zlib.crc32(struct.pack(">Q", offset))), 0)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class Spool:
    """This process's spool file: thread-safe appends, reads for the writer, a checkpoint."""

    # Once every record is stored and the file is this large, it is emptied and reused.
    RECYCLE_BYTES = 32 * 1024 * 1024

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.path = self.directory / (name + SUFFIX)
        self.done_path = self.directory / (name + ".done")
        # Created under a temporary name and locked before it gets its real name, so no other
        # process can ever see it unlocked and take it for a dead process's file.
        tmp = self.directory / (name + ".new")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(tmp, flags, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp, self.path)
        self._read_fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        self._done_fd = os.open(self.done_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        _write_checkpoint(self._done_fd, 0)
        self._lock = threading.Lock()
        self.end = 0  # bytes appended
        self.done = 0  # bytes stored in the database
        self.appended = 0  # records appended ...
        self.stored = 0  # ... and stored, so the difference is what waits
        self.closed = False
        self._finalizer = weakref.finalize(
            self, _close_all, [self._fd, self._read_fd, self._done_fd]
        )

    @property
    def pending(self) -> int:
        return self.appended - self.stored

    def append(self, record: Any) -> None:
        """Write one record; when this returns it survives the death of this process."""
        frame = _frame(record)
        with self._lock:
            if self.closed:
                raise SpoolError("the spool is closed")
            try:
                written = os.write(self._fd, frame)
            except OSError as exc:
                raise SpoolError(str(exc)) from exc
            if written != len(frame):  # disk full mid-frame: cut the partial frame off
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self.end)
                raise SpoolError(f"short write: {written} of {len(frame)} bytes")
            self.end += written
            self.appended += 1

    def unstored(self, limit: int) -> list[Frame]:
        """Up to ``limit`` records appended but not yet marked stored, oldest first."""
        frames = []
        for frame in read_frames(self._read_fd, self.done, self.end):
            frames.append(frame)
            if len(frames) >= limit:
                break
        return frames

    def mark_stored(self, frames: list[Frame]) -> None:
        """Move the checkpoint past ``frames`` (now committed to the database)."""
        if not frames:
            return
        with self._lock:
            self.done = frames[-1].end
            self.stored += len(frames)
            _write_checkpoint(self._done_fd, self.done)
            if self.done == self.end and self.end >= self.RECYCLE_BYTES:
                # Checkpoint first: a crash between the two replays a stored file (harmless),
                # never skips a record.
                _write_checkpoint(self._done_fd, 0)
                os.ftruncate(self._fd, 0)
                self.end = self.done = 0

    def close(self) -> None:
        """Stop appending; delete the files when everything is stored, else leave them to be
        adopted by the next process."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self.done == self.end:
                for path in (self.done_path, self.path):
                    path.unlink(missing_ok=True)
            self._finalizer()


@dataclass
class Orphan:
    """A dead process's spool file, locked by us while we replay it."""

    path: Path
    fd: int
    done_fd: int
    offset: int

    def frames(self, limit: int) -> list[Frame]:
        found = []
        for frame in read_frames(self.fd, self.offset):
            found.append(frame)
            if len(found) >= limit:
                break
        return found

    def mark_stored(self, frames: list[Frame]) -> None:
        if frames:
            self.offset = frames[-1].end
            _write_checkpoint(self.done_fd, self.offset)

    def trailing_bytes(self) -> int:
        return os.fstat(self.fd).st_size - self.offset

    def finish(self) -> None:
        """Everything is stored: remove the files (checkpoint first, see ``Spool``)."""
        self.path.with_suffix(".done").unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        _close_all([self.done_fd, self.fd])


def adopt_orphans(directory: str | os.PathLike[str], own: Path | None) -> Iterator[Orphan]:
    """Lock, one at a time, the spool files whose process is gone; the caller replays each
    and calls ``finish`` (or ``release`` to leave it for later)."""
    folder = Path(directory)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*" + SUFFIX)):
        if own is not None and path == own:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # its process is alive, or another process is replaying it
            continue
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # replayed and removed by someone else between listing and locking
            os.close(fd)
            continue
        done_path = path.with_suffix(".done")
        done_fd = os.open(done_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        yield Orphan(path, fd, done_fd, _read_checkpoint(done_fd))


def backlog_bytes(directory: str | os.PathLike[str]) -> int:
    """Bytes not yet stored across every spool file in ``directory`` (all processes)."""
    total = 0
    for path in Path(directory).glob("*" + SUFFIX):
        try:
            size = path.stat().st_size
            with open(path.with_suffix(".done"), "rb") as done:
                offset = _read_checkpoint(done.fileno())
        except OSError:
            continue
        total += max(0, size - offset)
    return total
