"""Frame images of a raw source, looked at without decoding them: listing by frame number, header sizes, checks."""

from __future__ import annotations

import os
from pathlib import Path

from builder.errors import BuilderError
from builder.records import SequenceRecord


def list_frame_images(folder: Path, ext: str | None = None) -> tuple[dict[int, str], int, str | None]:
    """Image files named by frame number in ``folder`` (e.g. ``000001.jpg``), without opening them.

    Args:
        folder: image folder; a missing folder gives no images.
        ext: extension with the dot to accept (``.jpg``); ``None`` accepts the most common one.

    Returns:
        ``(images, digits, ext)``: frame number (int) -> file name, the zero-padded digit count of the names
        (0 when there are none) and the extension found.
    """
    try:
        names = [e.name for e in os.scandir(folder) if e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return {}, 0, ext
    stems = [os.path.splitext(n) for n in names]
    stems = [(s, e) for s, e in stems if s.isdigit()]
    if ext is None and stems:
        exts = [e.lower() for _, e in stems]
        ext = max(sorted(set(exts)), key=exts.count)
    chosen = [(s, e) for s, e in stems if ext is not None and e.lower() == ext.lower()]
    images = {int(s): s + e for s, e in chosen}
    digits = len(chosen[0][0]) if chosen else 0
    return images, digits, ext


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels of an image, read from its header only (Pillow opens lazily).

    Raises:
        BuilderError: the file is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (OSError, UnidentifiedImageError) as err:
        raise BuilderError(f"{path}: cannot read the image header ({err})") from None


def check_image(path: Path) -> tuple[int, int] | str:
    """(width, height) of the image file at ``path``, or why it cannot be trained on: missing, empty (0 bytes),
    a header no image reader recognises, or a width or height of 0. Only the header is read (Pillow opens
    lazily), so a build or ``verify`` can check every frame; a symlink is followed."""
    from PIL import Image, UnidentifiedImageError

    try:
        if os.stat(path).st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as im:
            width, height = im.size
    except FileNotFoundError:
        return "missing"
    except (OSError, UnidentifiedImageError, ValueError) as err:
        return f"unreadable image header ({err})"
    return (int(width), int(height)) if width > 0 and height > 0 else f"image size {width}x{height}"


def missing_images(sequence: SequenceRecord) -> list[int]:
    """Frame indices of ``sequence`` whose image file does not exist (one directory listing per folder)."""
    listing: dict[Path, set[str]] = {}
    missing = []
    for frame in sequence.frames:
        folder = frame.image.parent
        if folder not in listing:
            try:
                listing[folder] = set(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                listing[folder] = set()
        if frame.image.name not in listing[folder]:
            missing.append(frame.index)
    return missing
