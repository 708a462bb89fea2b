"""Read and write IDX files, the format MNIST and its relatives ship in.

The format: two zero bytes, a dtype code, the number of dimensions, one big-endian
uint32 per dimension, then the data in C order (http://yann.lecun.com/exdb/mnist/).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dtype.newbyteorder(">") if dtype.itemsize > 1 else dtype: code for code, dtype in _DTYPES.items()}


class IDXFormatError(ValueError):
    """A file that is not a well-formed IDX file."""


def read_idx(path: str | Path) -> np.ndarray:
    """Return the array stored in the IDX file at `path` (uncompressed)."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise IDXFormatError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise IDXFormatError(f"{path}: IDX header truncated")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header_size != expected:
        raise IDXFormatError(
            f"{path}: IDX header says shape {shape} ({expected} data bytes) but the file has {len(raw) - header_size}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write `array` to `path` in IDX format (used to make synthetic datasets)."""
    array = np.asarray(array)
    big_endian = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if big_endian not in _CODES:
        raise IDXFormatError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, _CODES[big_endian], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    Path(path).write_bytes(header + array.astype(big_endian, copy=False).tobytes())
