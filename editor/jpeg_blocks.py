"""Write the composed result as a JPEG that keeps the stored original's own 8x8 blocks wherever the compose left
them alone. No Django; used by editor/compose.py (`compose_files`).

Re-encoding decoded JPEG pixels is not idempotent: a DCT coefficient near a rounding edge flips, most often in
saturated colours where the decoder clipped (measured on the test photos at quality 95, 4:4:4: 0.02 % of the values
off by more than 2 levels, up to 7; a higher quality re-quantises every block and is worse, quality 100 still
leaves 4). So the result is not re-encoded from its pixels: libjpeg reads the original's quantised coefficients
(`jpeg_read_coefficients`), only the blocks that hold a changed pixel get new coefficients, and libjpeg writes them
back losslessly (`jpeg_write_coefficients`) with the original's quantisation tables. An untouched block decodes to
exactly the original's pixels. A changed block is coded as the original's coefficients plus the quantised DCT of the
change (computed against the block as decoded). A block whose pixels moved by at most KEEP_LEVELS is kept as it
was: in a block that also holds unchanged pixels, any re-coding can move those by 3 levels (the decoder rounds Y,
Cb and Cr, and R = Y + 1.4 Cr, B = Y + 1.77 Cb add the roundings up), and the mask's soft edge moves pixels that
little. The compose itself starts the fade at the square's sides on a block boundary (editor/compose.py), so the
blocks the square's border crosses do not change.

libjpeg is called through ctypes with the v6.2 ABI (libjpeg.so.62: the system's libjpeg-turbo or the one bundled with
Pillow); the struct offsets below are that ABI's on LP64 (x86-64, arm64) and libjpeg itself checks the struct sizes.
Only JPEGs we wrote ourselves come here (editor/images.py: baseline, 8-bit, YCbCr, 4:4:4), after OpenCV decoded the
same bytes; anything else, or no usable libjpeg, returns None and the caller encodes the pixels as before.
libjpeg's fatal-error hook must not return, so it logs and ends the process, as libjpeg's default does.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from functools import cache
from pathlib import Path

import numpy as np
import PIL
from numpy.typing import NDArray

log = logging.getLogger(__name__)

_VERSION = 62
_DECOMPRESS_SIZE, _COMPRESS_SIZE, _ERROR_MGR_SIZE = 632, 520, 168
# jpeg_decompress_struct
_D_MEM, _D_WIDTH, _D_HEIGHT, _D_COMPONENTS, _D_COLOR_SPACE = 8, 48, 52, 56, 60
_D_QUANT_TABLES, _D_PRECISION, _D_COMP_INFO, _D_PROGRESSIVE, _D_ARITH = 200, 296, 304, 312, 316
# jpeg_component_info (96 bytes each), jpeg_memory_mgr, jpeg_compress_struct
_C_SIZE, _C_H_SAMP, _C_V_SAMP, _C_QUANT_NO, _C_WIDTH_BLOCKS, _C_HEIGHT_BLOCKS = 96, 8, 12, 16, 28, 32
_M_ACCESS_VIRT_BARRAY = 64
_W_OPTIMIZE_CODING = 264
_JCS_YCBCR = 3
_BLOCK_BYTES = 64 * 2

_ERROR_EXIT = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_ACCESS = ctypes.CFUNCTYPE(
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_int
)


def _fatal_error(cinfo: int | None) -> None:  # pragma: no cover - libjpeg failed on a file OpenCV had just decoded
    log.critical("libjpeg: fatal error while re-coding a result's blocks; the worker process ends")
    os._exit(70)


_fatal = _ERROR_EXIT(_fatal_error)


def _candidates() -> list[str]:
    found = ctypes.util.find_library("jpeg")
    names = [found] if found and ".so.62" in found else []
    names.append("libjpeg.so.62")
    # Pillow's wheels bundle libjpeg-turbo (the same ABI) beside the package.
    names += sorted(str(p) for p in (Path(PIL.__file__).parent.parent / "pillow.libs").glob("libjpeg*.so.62*"))
    return list(dict.fromkeys(names))


@cache
def _library() -> ctypes.CDLL | None:
    for name in _candidates():
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        vp, ulong = ctypes.c_void_p, ctypes.c_ulong
        for function, args, result in (
            ("jpeg_std_error", [vp], vp), ("jpeg_CreateDecompress", [vp, ctypes.c_int, ctypes.c_size_t], None),
            ("jpeg_mem_src", [vp, ctypes.c_char_p, ulong], None),
            ("jpeg_read_header", [vp, ctypes.c_int], ctypes.c_int),
            ("jpeg_read_coefficients", [vp], vp), ("jpeg_finish_decompress", [vp], ctypes.c_int),
            ("jpeg_destroy_decompress", [vp], None), ("jpeg_CreateCompress", [vp, ctypes.c_int, ctypes.c_size_t], None),
            ("jpeg_mem_dest", [vp, ctypes.POINTER(vp), ctypes.POINTER(ulong)], None),
            ("jpeg_copy_critical_parameters", [vp, vp], None), ("jpeg_write_coefficients", [vp, vp], None),
            ("jpeg_finish_compress", [vp], None), ("jpeg_destroy_compress", [vp], None),
        ):
            fn = getattr(lib, function, None)
            if fn is None:
                break
            fn.argtypes, fn.restype = args, result
        else:
            return lib
    log.warning("no libjpeg.so.62 found: results are re-encoded from their pixels")
    return None


def _sof(data: bytes) -> tuple[int, int, int, bytes] | None:
    """(marker, width, height, per-component sampling bytes) of the first frame header, or None."""
    at = 2
    if data[:2] != b"\xff\xd8":
        return None
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:
            at += 1
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            body = data[at + 4:at + 2 + length]
            if len(body) < 6 or body[0] != 8:
                return None
            count = body[5]
            return marker, int.from_bytes(body[3:5], "big"), int.from_bytes(body[1:3], "big"), bytes(
                body[6 + 3 * i + 1] for i in range(count) if 6 + 3 * i + 1 < len(body)
            )
        if marker == 0xDA:
            return None
        at += 2 + length
    return None


def eligible(data: bytes, width: int, height: int) -> bool:
    """A baseline (or extended) Huffman, 8-bit, three-component 4:4:4 JPEG of this size."""
    frame = _sof(data)
    return frame is not None and frame[0] in (0xC0, 0xC1) and frame[1:3] == (width, height) and frame[3] == b"\x11" * 3


# The orthonormal 8-point DCT-II: JPEG's forward DCT is D @ block @ D.T, the inverse D.T @ coefficients @ D.
_K = np.arange(8)
_DCT = (np.sqrt(np.where(_K == 0, 1.0, 2.0) / 8.0)[:, None] * np.cos((2 * _K[None, :] + 1) * _K[:, None] * np.pi / 16))
_DCT = _DCT.astype(np.float32)
# JFIF's full-range BT.601 YCbCr, as libjpeg converts.
_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168735892, -0.331264108, 0.5], [0.5, -0.418687589, -0.081312411]],
                   np.float32)
_TO_RGB = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136286, -0.714136286], [1.0, 1.772, 0.0]], np.float32)


def _ycc(rgb: NDArray[np.float32]) -> NDArray[np.float32]:
    """YCbCr of float RGB (... x 3), level-shifted as JPEG codes its samples (each sample - 128)."""
    out = np.asarray(rgb @ _TO_YCC.T, np.float32)
    out[..., 0] -= 128.0
    return out


def _decoded(coefficients: NDArray[np.float32], tables: NDArray[np.float32]) -> NDArray[np.float32]:
    """What a decoder makes of blocks (3 x n x 64 coefficients): n x 8 x 8 x 3 RGB, rounded and clipped as a
    decoder's samples are (libjpeg's integer IDCT can differ by a level now and then)."""
    spatial = _DCT.T @ (coefficients * tables[:, None, :]).reshape(3, -1, 8, 8) @ _DCT
    ycc = np.clip(np.rint(spatial + 128.0), 0.0, 255.0).transpose(1, 2, 3, 0)
    ycc[..., 1:] -= 128.0
    return np.asarray(np.clip(np.rint(ycc @ _TO_RGB.T), 0.0, 255.0), np.float32)


def _quantised(ycc: NDArray[np.float32], tables: NDArray[np.float32]) -> NDArray[np.int32]:
    """The DCT of n x 8 x 8 x 3 (level-shifted) YCbCr blocks in quantisation steps: 3 x n x 64, rounded."""
    spectrum = _DCT @ ycc.transpose(3, 0, 1, 2) @ _DCT.T
    return np.asarray(np.rint(spectrum.reshape(3, -1, 64) / tables[:, None, :]), np.int32)


Patch = tuple[int, int, NDArray[np.uint8]]  # left, top and how far (levels) each pixel of that rectangle moved
# A block whose pixels moved by at most this keeps the original's coefficients: re-coding it would move its
# unchanged pixels by as much (the decoder's rounding of Y, Cb and Cr adds up in R and B).
KEEP_LEVELS = 2


def recode_blocks(
    coefficients: NDArray[np.int16], tables: NDArray[np.float32], pixels: NDArray[np.uint8],
    written: NDArray[np.bool_],
) -> NDArray[np.int16]:
    """New coefficients (3 x n x 64) for n changed blocks (`pixels` n x 8 x 8 x 3, `written` where they moved):
    the original's plus the quantised DCT of the change, taken against the blocks as decoded and zero at the
    pixels that did not move."""
    before = _decoded(coefficients.astype(np.float32), tables)
    change = np.where(written[..., None], _ycc(pixels.astype(np.float32)) - _ycc(before), 0.0).astype(np.float32)
    return np.asarray(np.clip(coefficients.astype(np.int32) + _quantised(change, tables), -32768, 32767), np.int16)


class _Jpeg:
    """One libjpeg decompressor holding a file's coefficients, and the compressor that writes them."""

    def __init__(self, lib: ctypes.CDLL, data: bytes) -> None:
        self.lib, self.data = lib, data  # `data` must outlive the source manager
        self.error = ctypes.create_string_buffer(_ERROR_MGR_SIZE + 256)
        lib.jpeg_std_error(self.error)
        ctypes.c_void_p.from_buffer(self.error, 0).value = ctypes.cast(_fatal, ctypes.c_void_p).value
        self.src = ctypes.create_string_buffer(_DECOMPRESS_SIZE + 256)
        ctypes.c_void_p.from_buffer(self.src, 0).value = ctypes.addressof(self.error)
        lib.jpeg_CreateDecompress(self.src, _VERSION, _DECOMPRESS_SIZE)
        lib.jpeg_mem_src(self.src, data, len(data))  # read in place: `data` is kept alive by self.data
        self.header_ok = lib.jpeg_read_header(self.src, 1) == 1

    def _int(self, offset: int) -> int:
        return ctypes.c_int.from_buffer(self.src, offset).value

    def _pointer(self, address: int) -> int:
        return ctypes.c_void_p.from_address(address).value or 0

    def usable(self, width: int, height: int) -> bool:
        s = self.src
        return self.header_ok and (
            ctypes.c_uint.from_buffer(s, _D_WIDTH).value, ctypes.c_uint.from_buffer(s, _D_HEIGHT).value
        ) == (width, height) and self._int(_D_COMPONENTS) == 3 and self._int(_D_COLOR_SPACE) == _JCS_YCBCR and (
            self._int(_D_PRECISION) == 8 and not self._int(_D_PROGRESSIVE) and not self._int(_D_ARITH)
        )

    def read(self) -> tuple[list[NDArray[np.int16]], list[NDArray[np.float32]]]:
        """Views on the coefficient arrays (rows x cols x 64, natural order) and each component's table."""
        self.arrays = self.lib.jpeg_read_coefficients(self.src)
        mem = self._pointer(ctypes.addressof(self.src) + _D_MEM)
        access = _ACCESS(self._pointer(mem + _M_ACCESS_VIRT_BARRAY))
        info = self._pointer(ctypes.addressof(self.src) + _D_COMP_INFO)
        views, tables = [], []
        for index in range(3):
            component = info + index * _C_SIZE
            uint = ctypes.c_uint.from_address
            if (uint(component + _C_H_SAMP).value, uint(component + _C_V_SAMP).value) != (1, 1):
                raise ValueError("not 4:4:4")
            cols, rows = uint(component + _C_WIDTH_BLOCKS).value, uint(component + _C_HEIGHT_BLOCKS).value
            array = self._pointer(self.arrays + index * ctypes.sizeof(ctypes.c_void_p))
            starts = [self._pointer(access(ctypes.addressof(self.src), array, row, 1, 1)) for row in range(rows)]
            stride = cols * _BLOCK_BYTES
            if any(start != starts[0] + row * stride for row, start in enumerate(starts)):
                raise ValueError("coefficient rows are not contiguous")
            raw = (ctypes.c_int16 * (rows * cols * 64)).from_address(starts[0])
            views.append(np.ctypeslib.as_array(raw).reshape(rows, cols, 64))
            number = uint(component + _C_QUANT_NO).value
            slot = ctypes.addressof(self.src) + _D_QUANT_TABLES + number * ctypes.sizeof(ctypes.c_void_p)
            table = self._pointer(slot)
            tables.append(np.ctypeslib.as_array((ctypes.c_uint16 * 64).from_address(table)).astype(np.float32))
        return views, tables

    def write(self) -> bytes:
        lib = self.lib
        dst = ctypes.create_string_buffer(_COMPRESS_SIZE + 256)
        ctypes.c_void_p.from_buffer(dst, 0).value = ctypes.addressof(self.error)
        lib.jpeg_CreateCompress(dst, _VERSION, _COMPRESS_SIZE)
        out, size = ctypes.c_void_p(), ctypes.c_ulong()
        try:
            lib.jpeg_mem_dest(dst, ctypes.byref(out), ctypes.byref(size))
            lib.jpeg_copy_critical_parameters(self.src, dst)
            ctypes.c_int.from_buffer(dst, _W_OPTIMIZE_CODING).value = 1  # Huffman tables fitted to this image
            lib.jpeg_write_coefficients(dst, self.arrays)
            lib.jpeg_finish_compress(dst)
            return ctypes.string_at(out.value, size.value) if out.value else b""
        finally:
            lib.jpeg_destroy_compress(dst)
            if out.value:
                ctypes.CDLL(None).free(out)

    def close(self) -> None:
        self.lib.jpeg_destroy_decompress(self.src)


BAND_BLOCK_ROWS = 4  # block rows re-coded at a time (bounds the float working memory)


def _written(patches: list[Patch], top: int, bottom: int, left: int, right: int) -> NDArray[np.uint8]:
    """Rows top..bottom-1, columns left..right-1: how far the patches say each pixel moved."""
    out = np.zeros((bottom - top, right - left), np.uint8)
    for patch_left, patch_top, moved in patches:
        first, last = max(top, patch_top), min(bottom, patch_top + moved.shape[0])
        begin, end = max(left, patch_left), min(right, patch_left + moved.shape[1])
        if first < last and begin < end:
            view = out[first - top:last - top, begin - left:end - left]
            np.maximum(view, moved[first - patch_top:last - patch_top, begin - patch_left:end - patch_left], out=view)
    return out


def block_box(patches: list[Patch], width: int, height: int) -> tuple[int, int, int, int] | None:
    """The 8x8-block-aligned box (left, top, right, bottom; clipped to the image) around the patches' moves."""
    boxes = [(left, top, left + moved.shape[1], top + moved.shape[0]) for left, top, moved in patches
             if moved.size and int(moved.max()) > KEEP_LEVELS]
    if not boxes:
        return None
    left, top = min(b[0] for b in boxes) // 8 * 8, min(b[1] for b in boxes) // 8 * 8
    right, bottom = -(-max(b[2] for b in boxes) // 8) * 8, -(-max(b[3] for b in boxes) // 8) * 8
    return left, top, min(right, width), min(bottom, height)


class BlockWriter:
    """The stored original, opened to be written again with some of its blocks re-coded."""

    def __init__(self, jpeg: _Jpeg, width: int, height: int) -> None:
        self.jpeg, self.width, self.height = jpeg, width, height

    @classmethod
    def open(cls, original: bytes, width: int, height: int) -> BlockWriter | None:
        """None when the original is not one of ours (baseline, 8-bit, YCbCr, 4:4:4 of this size) or there is no
        libjpeg: the caller then encodes the pixels."""
        lib = _library()
        if lib is None or not eligible(original, width, height):
            return None
        jpeg = _Jpeg(lib, original)
        if not jpeg.usable(width, height):
            jpeg.close()
            return None
        return cls(jpeg, width, height)

    def write(self, region: NDArray[np.uint8], box: tuple[int, int, int, int] | None, patches: list[Patch]) -> (
        bytes | None
    ):
        """The JPEG: the original's coefficients, re-coded in the blocks where `patches` moved a pixel by more than
        KEEP_LEVELS. `region` holds the result's pixels in `box` (from block_box; None: nothing moved). None if
        the coefficients cannot be read after all (the caller then encodes the pixels)."""
        try:
            try:
                coefficients, tables = self.jpeg.read()
            except ValueError as exc:
                log.warning("cannot keep the original's blocks (%s): re-encoding the pixels", exc)
                return None
            if box is not None:
                self._recode(coefficients, np.stack(tables), region, box, patches)
            return self.jpeg.write()
        finally:
            self.jpeg.close()

    def _recode(
        self, coefficients: list[NDArray[np.int16]], table: NDArray[np.float32], region: NDArray[np.uint8],
        box: tuple[int, int, int, int], patches: list[Patch],
    ) -> None:
        left, top, right, bottom = box
        cols = -(-(right - left) // 8)
        for band_top in range(top, bottom, BAND_BLOCK_ROWS * 8):
            band_bottom = min(bottom, band_top + BAND_BLOCK_ROWS * 8)
            moved = _written(patches, band_top, band_bottom, left, right)
            if int(moved.max()) <= KEEP_LEVELS:
                continue
            pixels = region[band_top - top:band_bottom - top]
            rows = -(-(band_bottom - band_top) // 8)
            pad = ((0, rows * 8 - (band_bottom - band_top)), (0, cols * 8 - (right - left)))
            if pad[0][1] or pad[1][1]:  # a partial block at the photo's edge: padded as libjpeg pads it
                pixels, moved = np.pad(pixels, (*pad, (0, 0)), mode="edge"), np.pad(moved, pad)
            pixel_blocks = pixels.reshape(rows, 8, cols, 8, 3).transpose(0, 2, 1, 3, 4)
            moved_blocks = moved.reshape(rows, 8, cols, 8).transpose(0, 2, 1, 3)
            where = np.nonzero(moved_blocks.max(axis=(2, 3)) > KEEP_LEVELS)
            views = [c[band_top // 8:band_top // 8 + rows, left // 8:left // 8 + cols] for c in coefficients]
            new = recode_blocks(np.stack([view[where] for view in views]), table,
                                np.ascontiguousarray(pixel_blocks[where]), moved_blocks[where] > 0)
            for view, values in zip(views, new, strict=True):
                view[where] = values
