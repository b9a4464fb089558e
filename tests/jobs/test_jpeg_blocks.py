"""editor/jpeg_blocks.py: the result's JPEG keeps the stored original's own 8x8 blocks (libjpeg, real files)."""
from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np
from PIL import Image

from devservices.samples import person_scene
from editor import compose, jpeg_blocks

WIDTH, HEIGHT = 645, 483  # not multiples of 8: partial blocks at the right and bottom edges


def _jpeg(pixels: np.ndarray[Any, Any], **options: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=95, **options)
    return out.getvalue()


def _photo() -> np.ndarray[Any, Any]:
    return np.asarray(person_scene(WIDTH, HEIGHT, left=150, top=0, side=HEIGHT))


def test_only_the_blocks_with_a_moved_pixel_are_re_coded() -> None:
    original_jpeg = _jpeg(_photo(), subsampling=0)  # as editor/images.py stores originals
    original = compose.decode_rgb(original_jpeg)
    result = original.copy()
    top, left, bottom, right = 101, 203, 290, 645  # reaches the photo's right edge (a partial block)
    result[top:bottom, left:right, 0] = np.clip(result[top:bottom, left:right, 0].astype(int) + 60, 0, 255)
    moved = cv2.absdiff(result[top:bottom, left:right], original[top:bottom, left:right]).max(axis=2)
    writer = jpeg_blocks.BlockWriter.open(original_jpeg, WIDTH, HEIGHT)
    assert writer is not None
    box = jpeg_blocks.block_box([(left, top, moved)], WIDTH, HEIGHT)
    assert box == (200, 96, 645, 296)
    data = writer.write(result[box[1]:box[3], box[0]:box[2]].copy(), box, [(left, top, moved)])
    assert data is not None
    decoded = compose.decode_rgb(data).astype(np.int16)
    blocks = np.zeros((HEIGHT, WIDTH), bool)
    blocks[box[1]:box[3], box[0]:box[2]] = True
    assert np.array_equal(decoded[~blocks], original[~blocks])  # every other block: the original's, exactly
    edit = np.abs(decoded[top:bottom, left:right] - result[top:bottom, left:right].astype(np.int16))
    again = compose.decode_rgb(compose.encode_jpeg_consuming(result.copy())).astype(np.int16)
    re_encoded = np.abs(again[top:bottom, left:right] - result[top:bottom, left:right].astype(np.int16))
    print(f"\nthe edit after the block re-code: mean {edit.mean():.3f}, max {edit.max()}; after a pixel re-encode: "
          f"mean {re_encoded.mean():.3f}, max {re_encoded.max()}")
    # The edit is there, coded as finely as a re-encode at the original's quality codes it.
    assert edit.mean() <= re_encoded.mean() + 0.05 and edit.max() <= re_encoded.max() + 2


def test_a_move_of_at_most_2_levels_keeps_the_block() -> None:
    original_jpeg = _jpeg(_photo(), subsampling=0)
    original = compose.decode_rgb(original_jpeg)
    result = original.copy()
    result[40:60, 40:60] = np.clip(result[40:60, 40:60].astype(int) + 2, 0, 255)
    moved = cv2.absdiff(result[40:60, 40:60], original[40:60, 40:60]).max(axis=2)
    writer = jpeg_blocks.BlockWriter.open(original_jpeg, WIDTH, HEIGHT)
    assert writer is not None and jpeg_blocks.block_box([(40, 40, moved)], WIDTH, HEIGHT) is None
    data = writer.write(np.zeros((0, 0, 3), np.uint8), None, [(40, 40, moved)])
    assert data is not None and np.array_equal(compose.decode_rgb(data), original)


def test_files_that_are_not_ours_are_left_to_the_pixel_encode() -> None:
    pixels = _photo()
    assert jpeg_blocks.BlockWriter.open(_jpeg(pixels, subsampling=2), WIDTH, HEIGHT) is None  # 4:2:0
    assert jpeg_blocks.BlockWriter.open(_jpeg(pixels, subsampling=0, progressive=True), WIDTH, HEIGHT) is None
    assert jpeg_blocks.BlockWriter.open(_jpeg(pixels, subsampling=0), WIDTH + 1, HEIGHT) is None  # another size
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    assert jpeg_blocks.BlockWriter.open(png.getvalue(), WIDTH, HEIGHT) is None
    # and compose_files still gives the composed photo from a 4:2:0 original
    original_jpeg = _jpeg(pixels, subsampling=2)
    original = compose.decode_rgb(original_jpeg)
    square = compose.Square(150, 0, HEIGHT)
    model_input = cv2.resize(original[:, 150:150 + HEIGHT], (512, 512), interpolation=cv2.INTER_AREA)
    model_output = model_input.copy()
    cv2.circle(model_output, (256, 300), 120, (200, 30, 30), -1)
    encode = lambda image: cv2.imencode(".png", image[..., ::-1])[1].tobytes()  # noqa: E731
    files = compose.compose_files(original=original_jpeg, square=square, model_input=encode(model_input),
                                  model_output=encode(model_output))
    composed, _ = compose.compose(original, square, model_input, model_output)
    assert np.abs(compose.decode_rgb(files.jpeg).astype(np.int16) - composed.astype(np.int16)).mean() < 1.5
