import struct

import numpy as np
import pytest

from mnist_exp.data.idx import IDXFormatError, read_idx, write_idx


def test_reads_hand_built_idx_bytes(tmp_path):
    path = tmp_path / "images"
    pixels = bytes(range(12))
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">3I", 2, 2, 3) + pixels)
    array = read_idx(path)
    assert array.dtype == np.uint8 and array.shape == (2, 2, 3)
    assert array.ravel().tolist() == list(range(12))


def test_write_then_read_round_trips_labels_and_images(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "l", labels)
    write_idx(tmp_path / "i", images)
    assert (tmp_path / "l").read_bytes()[:8] == b"\x00\x00\x08\x01" + struct.pack(">I", 5)
    np.testing.assert_array_equal(read_idx(tmp_path / "l"), labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "i"), images)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not an IDX file"),
        (b"PK\x03\x04rest", "not an IDX file"),
        (b"\x00\x00\x08\x02" + struct.pack(">I", 2), "header truncated"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"\x01\x02", "has 2"),
    ],
)
def test_malformed_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(IDXFormatError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)
