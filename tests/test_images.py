"""Turning real image files into MNIST-style digits."""

import numpy as np
import pytest
from PIL import Image

from mnist_exp.data.images import ImageError, load_digit, to_mnist_digit
from tests.helpers import stroke


def test_digit_is_scaled_into_20_pixels_and_centred_by_mass():
    digit = to_mnist_digit(stroke().astype(np.float32))
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    rows, cols = np.nonzero(digit > 64)
    assert rows.max() - rows.min() + 1 <= 21 and rows.max() - rows.min() + 1 >= 18
    mass = digit.astype(float)
    centre = ((mass.sum(1) * np.arange(28)).sum() / mass.sum(), (mass.sum(0) * np.arange(28)).sum() / mass.sum())
    assert abs(centre[0] - 13.5) < 1 and abs(centre[1] - 13.5) < 1


def test_dark_on_light_colour_and_light_on_dark_gray_give_the_same_digit(tmp_path):
    light_on_dark = stroke()
    Image.fromarray(light_on_dark).save(tmp_path / "a.png")
    rgb = np.stack([255 - light_on_dark] * 3, axis=-1)
    rgb[..., 0] = np.minimum(255, rgb[..., 0].astype(int) + 0).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "b.bmp")
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=90)
    a, b, c = (load_digit(tmp_path / n).astype(int) for n in ("a.png", "b.bmp", "c.jpg"))
    assert np.abs(a - b).max() <= 1
    assert np.abs(a - c).mean() < 8  # JPEG artefacts only


def test_transparent_background_counts_as_paper(tmp_path):
    rgba = np.zeros((60, 60, 4), dtype=np.uint8)
    rgba[10:50, 25:35] = [0, 0, 0, 255]  # opaque black ink on a fully transparent sheet
    Image.fromarray(rgba, "RGBA").save(tmp_path / "ink.png")
    digit = load_digit(tmp_path / "ink.png")
    assert digit.max() == 255 and digit[0, 0] == 0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("not an image"), "not a readable image"),
        (lambda p: Image.fromarray(np.full((30, 30), 200, np.uint8)).save(p, format="PNG"), "no digit found"),
    ],
)
def test_bad_files_raise_a_message_naming_the_file(tmp_path, make, message):
    path = tmp_path / "input.png"
    make(path)
    with pytest.raises(ImageError, match=message) as error:
        load_digit(path)
    assert str(error.value).startswith(str(path))
