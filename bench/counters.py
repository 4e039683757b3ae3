"""Counters shared between processes through a small mmap'd file (one uint64 per slot)."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

SLOTS = 16


class Counters:
    def __init__(self, path: Path | str, create: bool = False) -> None:
        p = Path(path)
        if not p.exists() or p.stat().st_size < 8 * SLOTS:
            p.write_bytes(b"\0" * 8 * SLOTS)
        self._file = p.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), 8 * SLOTS)
        if create:  # zeroed in place: another process may have it mapped
            self._map[:] = b"\0" * 8 * SLOTS

    def get(self, slot: int) -> int:
        return int(struct.unpack_from("<Q", self._map, 8 * slot)[0])

    def set(self, slot: int, value: int) -> None:
        struct.pack_into("<Q", self._map, 8 * slot, value)

    def close(self) -> None:
        self._map.close()
        self._file.close()
