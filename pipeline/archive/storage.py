"""Where the archive lives: a local directory, or any URL fsspec understands (s3://bucket/prefix,
gs://…, abfs://…, memory:// in tests). Object-storage drivers (s3fs, gcsfs, adlfs) are installed by whoever
points the archive there; nothing here depends on one.

Paths inside the archive are relative, "/"-separated, the same on every store.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

#: a file being written is named "_tmp-<random>-<name>.partial": no "*.parquet" glob matches it, and
#: Spark/Hive skip names starting with "_"
TEMP_PREFIX, TEMP_SUFFIX = "_tmp-", ".partial"


class ArchiveError(Exception):
    """The archive cannot be used as asked: the message says what to do."""


@dataclass
class Store:
    fs: Any  # an fsspec AbstractFileSystem
    root: str  # the archive's root in ``fs`` terms (no protocol)
    url: str  # as given

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, relative: str) -> str:
        return f"{self.root.rstrip('/')}/{relative}"

    def relative(self, full: str) -> str:
        return full[len(self.root.rstrip("/")) + 1 :] if full.startswith(self.root.rstrip("/") + "/") else full

    def url_of(self, relative: str) -> str:
        """A path DuckDB can open: a local path, or protocol://path for a registered fsspec filesystem."""
        if self.is_local:
            return self.path(relative)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{self.path(relative).lstrip('/')}"

    def exists(self, relative: str) -> bool:
        return bool(self.fs.exists(self.path(relative)))

    def read(self, relative: str) -> bytes:
        data: bytes = self.fs.cat_file(self.path(relative))
        return data

    def glob(self, pattern: str) -> list[str]:
        """Relative paths matching a relative glob, sorted."""
        return sorted(self.relative(p) for p in self.fs.glob(self.path(pattern)))

    def write_atomically(self, relative: str, data: bytes) -> None:
        """Write a whole file so that no reader ever sees part of it: a temporary name in the same
        directory, then a rename. Locally the data is fsynced before the rename and the directory after
        it, so a file that is visible is also on disk (evidence must survive a power cut)."""
        final = self.path(relative)
        directory, name = final.rsplit("/", 1)
        temp = f"{directory}/{TEMP_PREFIX}{uuid.uuid4().hex[:8]}-{name}{TEMP_SUFFIX}"
        if self.is_local:
            os.makedirs(directory, exist_ok=True)
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, final)
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return
        # object stores: an upload becomes visible whole or not at all; the rename (a server-side copy) keeps
        # the same convention as the local store, so a listing never shows a file still being uploaded
        self.fs.makedirs(directory, exist_ok=True)
        self.fs.pipe_file(temp, data)
        self.fs.mv(temp, final)

    def delete(self, relative: str) -> None:
        self.fs.rm_file(self.path(relative))


def open_store(url: str, *, create: bool = True) -> Store:
    """The store of an archive URL or local directory (created if missing, when ``create``; otherwise a
    missing archive is an error: a mistyped path must not read as an empty archive)."""
    if not url:
        raise ArchiveError("no archive location: give --dir URL or set LIVEWATCH_ARCHIVE_URL")
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:
        raise ArchiveError(
            f"cannot open archive {url!r}: {e} (object storage needs its fsspec driver, e.g. pip install s3fs)"
        ) from None
    if isinstance(fs, LocalFileSystem):
        root = os.path.abspath(root)
        if create:
            os.makedirs(root, exist_ok=True)
    if not create and not fs.exists(f"{root.rstrip('/')}/_manifest"):
        raise ArchiveError(f"no archive at {url!r} (no _manifest in it): check the path or LIVEWATCH_ARCHIVE_URL")
    return Store(fs, root, url)
