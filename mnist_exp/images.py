"""Turn a real image file into an MNIST-style digit: 28x28, white digit on black, centred.

MNIST's digits were size-normalized to fit a 20x20 box (keeping their aspect ratio, with
anti-aliasing) and then centred in a 28x28 frame by their centre of mass; `to_mnist_digit`
does the same to any PNG, JPEG, BMP, ... of any size, in colour or grayscale, dark-on-light
or light-on-dark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageError(ValueError):
    """A file that cannot be read as a digit image; the message says why."""


def read_grayscale(path: str | Path) -> np.ndarray:
    """The image as float32 gray levels 0..255; transparent areas count as white paper."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            return np.asarray(image.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError) as error:
        raise ImageError(f"{path}: not a readable image ({error.__class__.__name__})") from None


def to_mnist_digit(gray: np.ndarray, box: int = 20, size: int = 28) -> np.ndarray:
    """uint8 [size, size]: the digit, light on dark, scaled into `box` and centred by mass."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:  # dark ink on light paper: make the ink bright
        gray, border = 255.0 - gray, 255.0 - border
    ink = np.clip(gray - np.median(border), 0, None)
    if ink.max() < 32:
        raise ImageError("no digit found (the image is blank or has no contrast)")
    rows, cols = np.nonzero(ink > 0.25 * ink.max())
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = box / max(ink.shape)
    height, width = max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))
    digit = Image.fromarray((ink * (255.0 / ink.max())).astype(np.uint8)).resize((width, height), Image.LANCZOS)
    digit = np.asarray(digit, dtype=np.float32)
    total = digit.sum()
    centre_row = (digit.sum(axis=1) * np.arange(height)).sum() / total
    centre_col = (digit.sum(axis=0) * np.arange(width)).sum() / total
    top = int(np.clip(round(size / 2 - 0.5 - centre_row), 0, size - height))
    left = int(np.clip(round(size / 2 - 0.5 - centre_col), 0, size - width))
    frame = np.zeros((size, size), dtype=np.float32)
    frame[top : top + height, left : left + width] = digit
    return np.clip(frame, 0, 255).round().astype(np.uint8)


def load_digit(path: str | Path) -> np.ndarray:
    """Read an image file and return it as an MNIST-style uint8 28x28 digit."""
    try:
        return to_mnist_digit(read_grayscale(path))
    except ImageError as error:
        message = str(error)
        raise ImageError(message if message.startswith(str(path)) else f"{path}: {message}") from None
