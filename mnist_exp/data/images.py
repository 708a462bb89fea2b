"""Turn a real image file into an MNIST-style digit: 28x28, white digit on black, centred.

MNIST's digits were size-normalized to fit a 20x20 box (keeping their aspect ratio, with
anti-aliasing) and then centred in a 28x28 frame by their centre of mass; `to_mnist_digit`
does the same to any PNG, JPEG, BMP, ... of any size, in colour or grayscale, dark-on-light
or light-on-dark.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Files from elsewhere are bounded before they are decoded: a small file can claim a huge image
# (a "decompression bomb"), and some formats (EPS, PDF) would run other programs to decode.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 50_000_000
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM", "TGA", "ICO")
IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".jfif",
    ".bmp",
    ".dib",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".pbm",
    ".pgm",
    ".ppm",
    ".pnm",
    ".tga",
    ".ico",
)


class ImageError(ValueError):
    """A file that cannot be read as a digit image; the message says why."""


def shown_path(path: str | Path) -> str:
    """A file name as text that always prints (undecodable bytes as \\xNN escapes)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def scaled_to_8_bits(image: Image.Image) -> np.ndarray:
    """Gray levels 0..255 for 16-bit, 32-bit and float images, scaled by their range rather than clipped."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(values.max()) if values.size else 0.0
    if image.mode.startswith("I;16") or 255 < top <= 65535:
        values = values / 257.0  # 16-bit range
    elif image.mode == "F" and 0 < top <= 1.0:
        values = values * 255.0  # float in [0, 1]
    elif top > 65535:
        values = values * (255.0 / top)
    return np.clip(values, 0, 255).astype(np.float32)


def read_grayscale(path: str | Path) -> np.ndarray:
    """The image as float32 gray levels 0..255; transparent areas count as white paper."""
    path = Path(path)
    if path.is_dir():
        raise ImageError("is a directory, not an image file")
    if not path.is_file():
        raise ImageError("no such file")
    size = path.stat().st_size
    if size == 0:
        raise ImageError("empty file")
    if size > MAX_FILE_BYTES:
        raise ImageError(
            f"file too large ({size / 2**20:.0f} MiB; images up to {MAX_FILE_BYTES // 2**20} MiB are read)"
        )
    Image.init()  # register every plugin, so that `formats` can name them
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise ImageError(
                        f"image too large ({image.width}x{image.height} pixels; the limit is {MAX_PIXELS:,})"
                    )
                image = ImageOps.exif_transpose(image)
                if image.mode in ("I", "F") or image.mode.startswith("I;16"):
                    return scaled_to_8_bits(image)
                if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
                    rgba = image.convert("RGBA")
                    image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
                return np.asarray(image.convert("L"), dtype=np.float32)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image too large (a decompression bomb; the limit is {MAX_PIXELS:,} pixels)") from None
    except Exception as error:  # a hostile file can make a decoder raise anything; it fails alone
        raise ImageError(f"not a readable image ({error.__class__.__name__})") from None


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
    """Read an image file and return it as an MNIST-style uint8 28x28 digit; ImageError names the file."""
    try:
        return to_mnist_digit(read_grayscale(path))
    except ImageError as error:
        raise ImageError(f"{shown_path(path)}: {error}") from None
