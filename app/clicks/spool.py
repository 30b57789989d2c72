"""The click spool: append-only local files, written before the 302, read by one writer.

Why a file and not the database: a click must survive the serving process being killed right
after its redirect is sent, and the database may be slow or away. One ``write(2)`` of a
framed record to an ``O_APPEND`` file puts it in the kernel's page cache, which outlives the
process (SIGKILL included) without an fsync.

Files in the spool directory:
  ``<name>.clicks``  frames: magic ``CK``, payload length, CRC-32, payload (JSON)
  ``<name>.done``    checkpoint: byte offset up to which every frame is in the database
  ``writer.lock``    held by the one process that stores clicks from this directory

Two roles, so that a serving process never reads, decodes or stores anything:

- ``Spool``, in each serving process, appends to a file it holds an exclusive ``flock`` on.
  The kernel drops that lock when the process dies, however it dies; a process also lets go
  of its file on a clean stop and when the file is full (it starts a new one). A file whose
  lock is free is *sealed*: nothing will ever be appended to it again.
- ``SpoolReader``, in the one writer (it holds ``writer.lock``), reads every file from its
  checkpoint, moves checkpoints after each commit, and deletes sealed files once they are
  stored. Replays are harmless because every click carries its own id (``app.clicks.recording``).

Limits (see docs/redirector.md): the page cache does not survive a power cut or kernel
crash, and a torn last frame of a sealed file is ignored.
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


# Built once: ``json.dumps`` with options builds a new encoder on every call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _frame(record: Any) -> bytes:
    payload = _ENCODE(record).encode("utf-8")
    if len(payload) > MAX_PAYLOAD:
        raise SpoolError(f"record of {len(payload)} bytes is larger than {MAX_PAYLOAD}")
    return _FRAME.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True, slots=True)
class Frame:
    end: int  # offset just past this frame: the checkpoint once it is stored
    record: Any


_CHUNK = 1024 * 1024


def _whole_frames(fd: int, start: int, stop: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """``(buffer, at, end)`` for each whole frame from ``start`` up to ``stop`` (or the end of
    the file): the frame is ``buffer[at:]``, the file offset just past it ``end``. Stops
    quietly at the first frame that is incomplete or malformed: a tail torn by a crash, or one
    being written right now. Checksums are the caller's business.

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
        magic, length, _crc = _FRAME.unpack_from(buffer, at)
        if magic != _MAGIC or length > MAX_PAYLOAD:
            return
        if at + _FRAME.size + length > len(buffer):
            buffer, base = os.pread(fd, max(_CHUNK, _FRAME.size + length), offset), offset
            at = 0
            if _FRAME.size + length > len(buffer):
                return
        offset = base + at + _FRAME.size + length
        yield buffer, at, offset


def read_frames(fd: int, start: int, stop: int | None = None) -> Iterator[Frame]:
    """Frames from ``start`` up to ``stop`` (or the end of the file), stopping quietly at the
    first frame that is incomplete or fails its check: a tail torn by a crash."""
    for buffer, at, end in _whole_frames(fd, start, stop):
        _magic, length, crc = _FRAME.unpack_from(buffer, at)
        payload = buffer[at + _FRAME.size : at + _FRAME.size + length]
        if zlib.crc32(payload) != crc:
            return
        try:
            record = json.loads(payload)
        except ValueError:
            continue  # cannot happen for a frame whose CRC matches what we wrote
        yield Frame(end, record)


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
    """This process's spool: thread-safe appends to a file only this process writes."""

    # A file this large is sealed and a new one started, so the writer can delete stored
    # clicks without ever truncating a file somebody appends to.
    ROTATE_BYTES = 32 * 1024 * 1024

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.closed = False
        self._fd, self.path = self._open()
        self.size = 0  # bytes in the current file (only this process appends to it)
        self._finalizer = weakref.finalize(self, _close_all, [self._fd])

    def _open(self) -> tuple[int, Path]:
        name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        path = self.directory / (name + SUFFIX)
        # Created under a temporary name and locked before it gets its real name, so the
        # writer never sees it unlocked and takes it for a sealed file.
        tmp = self.directory / (name + ".new")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, path)
        except OSError:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return fd, path

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
                    os.ftruncate(self._fd, self.size)
                raise SpoolError(f"short write: {written} of {len(frame)} bytes")
            self.size += written
            if self.size >= self.ROTATE_BYTES:
                self._rotate()

    def _rotate(self) -> None:
        try:
            fd, path = self._open()
        except OSError:
            return  # keep appending to the full file; the next append tries again
        old = self._fd
        self._fd, self.path, self.size = fd, path, 0
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _close_all, [fd])
        os.close(old)  # seals it: the writer stores what is left and deletes it

    def close(self) -> None:
        """Stop appending and let go of the file (the writer stores the rest, then deletes
        it)."""
        with self._lock:
            if not self.closed:
                self.closed = True
                self._finalizer()


@dataclass
class _File:
    """The reader's view of one spool file."""

    path: Path
    fd: int
    done_fd: int
    offset: int  # checkpoint: everything before it is stored
    sealed: bool = False  # its process let go of it (we hold its lock now)
    counted_from: int = -1  # pending-count cache: frames between these two offsets
    counted_to: int = -1
    counted: int = 0


@dataclass(frozen=True, slots=True)
class Taken:
    """Frames read from one file, not yet stored."""

    file: _File
    frames: list[Frame]


class SpoolReader:
    """Reads every spool file of a directory from its checkpoint. Only one reader may run
    per directory (``hold_writer_lock``), as it alone writes checkpoints and deletes files."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._files: dict[str, _File] = {}
        self._lock_fd: int | None = None

    # -- the writer lock -------------------------------------------------------------

    def hold_writer_lock(self) -> bool:
        """Take this directory's writer lock if it is free (kept until ``close``)."""
        if self._lock_fd is not None:
            return True
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def close(self) -> None:
        for file in self._files.values():
            _close_all([file.fd, file.done_fd])
        self._files.clear()
        if self._lock_fd is not None:
            _close_all([self._lock_fd])
            self._lock_fd = None

    # -- reading ---------------------------------------------------------------------

    def scan(self) -> None:
        """Pick up new files and notice files whose process let go of them."""
        for path in sorted(self.directory.glob("*" + SUFFIX)):
            if path.name in self._files:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            done_fd = os.open(
                path.with_suffix(".done"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            self._files[path.name] = _File(path, fd, done_fd, _read_checkpoint(done_fd))
        for file in self._files.values():
            if not file.sealed:
                try:
                    fcntl.flock(file.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive and may append
                file.sealed = True

    def live_files(self) -> int:
        """Files a serving process still holds (may append to), as of the last ``scan``."""
        return sum(1 for file in self._files.values() if not file.sealed)

    def take(self, limit: int) -> list[Taken]:
        """Up to ``limit`` unstored frames, oldest file first."""
        taken: list[Taken] = []
        room = limit
        for file in self._files.values():
            if room <= 0:
                break
            frames = []
            for frame in read_frames(file.fd, file.offset):
                frames.append(frame)
                if len(frames) >= room:
                    break
            if frames:
                taken.append(Taken(file, frames))
                room -= len(frames)
        return taken

    def mark_stored(self, taken: list[Taken]) -> None:
        """Move checkpoints past frames now committed to the database."""
        for part in taken:
            part.file.offset = part.frames[-1].end
            _write_checkpoint(part.file.done_fd, part.file.offset)

    def finish_sealed(self) -> list[tuple[Path, int]]:
        """Delete sealed files with nothing left to store; returns (path, ignored bytes of a
        torn last frame) for each."""
        finished = []
        for name, file in list(self._files.items()):
            if not file.sealed or next(read_frames(file.fd, file.offset), None) is not None:
                continue
            torn = os.fstat(file.fd).st_size - file.offset
            # Checkpoint first: a crash between the two replays a stored file (harmless),
            # never skips a record.
            file.path.with_suffix(".done").unlink(missing_ok=True)
            file.path.unlink(missing_ok=True)
            _close_all([file.fd, file.done_fd])
            del self._files[name]
            finished.append((file.path, torn))
        return finished

    def pending(self) -> int:
        """Frames not yet stored, across every file (headers only, each byte read once
        while the checkpoint stays put)."""
        total = 0
        for file in self._files.values():
            if file.counted_from != file.offset:
                file.counted_from = file.counted_to = file.offset
                file.counted = 0
            count, file.counted_to = count_frames(file.fd, file.counted_to)
            file.counted += count
            total += file.counted
        return total


def count_frames(fd: int, start: int) -> tuple[int, int]:
    """How many whole frames lie from ``start`` on, and the offset after the last one
    (headers only: cheap enough to run on every health report)."""
    count, offset = 0, start
    for _buffer, _at, end in _whole_frames(fd, start):
        count, offset = count + 1, end
    return count, offset


def backlog_bytes(directory: str | os.PathLike[str]) -> int:
    """Bytes not yet stored across every spool file in ``directory`` (all processes)."""
    total = 0
    for path in Path(directory).glob("*" + SUFFIX):
        try:
            size = path.stat().st_size
        except OSError:
            continue  # deleted meanwhile: stored
        try:
            with open(path.with_suffix(".done"), "rb") as done:
                offset = _read_checkpoint(done.fileno())
        except OSError:
            offset = 0  # the writer has not seen this file yet
        total += max(0, size - offset)
    return total
