"""Small I/O helpers shared by the data modules: atomic NIfTI and ``.npy`` writes, one-line error text."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from iac_components.utils import atomic_write

__all__ = ["save_nifti", "save_npy", "one_line"]


def save_nifti(path: str | os.PathLike, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``array`` with ``affine`` as ``.nii.gz`` atomically (temp file, then rename); qform = sform."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    blob = gzip.compress(img.to_bytes(), compresslevel=1, mtime=0)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(blob))


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """``np.save`` atomically (keeps Fortran order when the array has it)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    return atomic_write(path, write)


def one_line(e: BaseException) -> str:
    """The innermost cause's type and first line (MONAI wraps reader errors in long multi-line messages)."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = str(e).strip()
    msg = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__
