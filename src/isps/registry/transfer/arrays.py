"""Small Arrow/NumPy column helpers shared by validation, writing and export (no row loops)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from isps.registry.fields import as_text


# ---------------------------------------------------------------- small column helpers

def _np(arr) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.to_numpy(zero_copy_only=False)


def _text(raw) -> np.ndarray:
    """A column as trimmed text ('' for empty), as a NumPy object array."""
    return _np(as_text(raw)).astype(object)


def _index(keys, values) -> np.ndarray:
    """Position of each key among ``values`` (first occurrence), -1 where absent."""
    k = keys if isinstance(keys, pa.Array) else pa.array(keys)
    if len(values) == 0 or len(k) == 0:
        return np.full(len(k), -1, dtype=np.int64)
    v = values if isinstance(values, pa.Array) else pa.array(values, type=k.type)
    return _np(pc.fill_null(pc.index_in(k, value_set=v), -1)).astype(np.int64)


def _isin(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """np.isin for text keys, by hash (NumPy's isin on object arrays compares every pair)."""
    return _index(pa.array(keys.tolist(), pa.string()), pa.array(values.tolist(), pa.string())) >= 0


def _say(mask: np.ndarray, *parts) -> np.ndarray:
    """Messages for the rows in ``mask`` only (None elsewhere); each part is text or a per-row array.
    Only rejected rows are formatted, so a clean million-row file formats nothing."""
    out = np.full(len(mask), None, dtype=object)
    idx = np.flatnonzero(mask)
    if len(idx):
        msg = np.full(len(idx), "", dtype=object)
        for part in parts:
            if not isinstance(part, str):
                part = np.asarray(part, dtype=object)[idx].astype(str).astype(object)
            msg = msg + part
        out[idx] = msg
    return out


def _join(*parts, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


def _objects(values: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values) if not isinstance(values, np.ndarray) else values
    return out


def _as_text_values(values: np.ndarray, kind: str) -> np.ndarray:
    """Values as the history stores them (as registry.service's ``_as_text``), column-wise."""
    out = np.full(len(values), None, dtype=object)
    some = np.not_equal(values, None)
    if not some.any():
        return out
    v = values[some]
    if kind == "bool":
        out[some] = np.where(v.astype(bool), "yes", "no")
    elif kind == "float":
        out[some] = np.char.mod("%g", v.astype(float)).astype(object)
    elif kind == "int":
        out[some] = v.astype(np.int64).astype(str).astype(object)
    elif kind == "date":
        out[some] = _np(pc.cast(pa.array(list(v), pa.date32()), pa.string()))
    else:
        out[some] = v
    return out


_ARROW_TYPES = {"text": pa.string(), "choice": pa.string(), "bool": pa.bool_(), "int": pa.int64(),
                "float": pa.float64(), "date": pa.date32()}
