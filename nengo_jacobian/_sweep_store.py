"""A sweep's results on disk: one NetCDF file per chunk, written as chunks arrive.

Layout of ``out/``::

    sweep.json                 what was swept (everything but the point values)
    chunks/chunk-000000.nc     points [0, chunk), with their values' SHA-256
    chunks/chunk-000001.nc     ...

A chunk file is written to a temporary name and renamed, so a file that exists is
complete. A sweep started again with the same ``out`` reuses every chunk file whose
settings and point values match and computes only the others.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os

import numpy as np

from nengo_jacobian.exceptions import JacobianError

MANIFEST = "sweep.json"


def points_digest(values: np.ndarray) -> str:
    """SHA-256 of a chunk's point values (float64, C order)."""
    data = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    return hashlib.sha256(repr(data.shape).encode() + data.tobytes()).hexdigest()


class ChunkStore:
    """Chunk files of one sweep in ``directory``.

    Parameters
    ----------
    directory : str
    manifest : dict
        The sweep's settings; a directory holding another sweep is refused.
    error : type
        Exception class for a mismatch.
    """

    def __init__(self, directory, manifest: dict, error=JacobianError):
        self.directory = os.fspath(directory)
        self.chunk_dir = os.path.join(self.directory, "chunks")
        path = os.path.join(self.directory, MANIFEST)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
            differ = sorted(
                k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k)
            )
            if differ:
                raise error(
                    f"out={self.directory!r} holds another sweep (it differs in: "
                    f"{', '.join(differ)}); use a new directory, or delete this one "
                    f"to start over."
                )
        else:
            os.makedirs(self.chunk_dir, exist_ok=True)
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=1, sort_keys=True)
            os.replace(path + ".tmp", path)
        os.makedirs(self.chunk_dir, exist_ok=True)

    def path(self, index: int) -> str:
        """The file of chunk ``index``."""
        return os.path.join(self.chunk_dir, f"chunk-{index:06d}.nc")

    def done(self, index: int, digest: str) -> bool:
        """Whether chunk ``index`` is on disk, computed at these point values."""
        path = self.path(index)
        if not os.path.exists(path):
            return False
        import netCDF4

        try:
            with netCDF4.Dataset(path) as f:
                return getattr(f, "points_sha256", None) == digest
        except OSError:  # unreadable: compute it again
            return False

    def write(self, index: int, dataset) -> None:
        """Write one chunk's dataset atomically."""
        path = self.path(index)
        dataset.to_netcdf(path + ".tmp", format="NETCDF4")
        os.replace(path + ".tmp", path)

    def open(self, n_chunks: int):
        """All chunks as one Dask-backed `xarray.Dataset` along ``point``."""
        import xarray as xr

        paths = [self.path(i) for i in range(n_chunks)]
        for stale in glob.glob(os.path.join(self.chunk_dir, "*.tmp")):
            os.remove(stale)
        return xr.open_mfdataset(
            paths,
            combine="nested",
            concat_dim="point",
            data_vars="minimal",
            coords="minimal",
            compat="override",
            combine_attrs="drop_conflicts",
            parallel=False,
        )
