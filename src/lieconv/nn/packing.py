"""Pointwise layers on the real rows of a padded batch only (the packed layout).

A batch of molecules of 3-29 atoms padded to 29 is about a third padding; Linear layers, batch norm
and Swish of width k = 1536 would spend that third on rows whose result is thrown away.
``RowPacking`` gathers the real rows of values (B, N, c) into (P, c) and scatters results back
(zeros at the padding), both differentiable to any order.  It packs only when the batch has its own
mask per example and at least ``MIN_PADDING`` of it is padding; otherwise both maps are the identity.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from torch import Tensor

__all__ = ["RowPacking", "MIN_PADDING"]

_REUSED: contextvars.ContextVar[dict | None] = contextvars.ContextVar("lieconv_row_packings", default=None)

#: pack when at least this fraction of the rows is padding (below it the copies cost more than they save)
MIN_PADDING = 0.125


class RowPacking:
    """The real rows of (B, N, c) values under ``mask`` (Bg, N).

    ``pack(values)`` -> (P, c) (or the values themselves when not packing), ``unpack(rows, c)`` ->
    (B, N, c) with zeros at the padding, ``mask``: the mask that goes with packed values (None: every
    row is real) or the original one.

    Deciding whether to pack reads the number of real rows on the host (a GPU waits for it).  Within
    ``RowPacking.reused()`` (a network's forward pass) the packing of a mask is made once:
    ``RowPacking(mask, batch)`` on the same, unmodified mask tensor returns the same packing, so the
    layers of a network whose mask does not change (no subsampling) share one count.
    """

    def __new__(cls, mask: Tensor, batch: int):
        made = _REUSED.get()
        key = (id(mask), batch)
        version = None if mask.is_inference() else mask._version  # inference tensors have no version counter
        if made is not None and key in made and made[key][1] == version:
            return made[key][2]
        self = super().__new__(cls)
        self._build(mask, batch)
        if made is not None:
            made[key] = (mask, version, self)  # holds the mask: its id is not reused meanwhile
        return self

    @staticmethod
    @contextlib.contextmanager
    def reused() -> Iterator[None]:
        """Within the block, a mask's packing is made once (see the class docstring); nested blocks share it."""
        token = _REUSED.set({}) if _REUSED.get() is None else None
        try:
            yield
        finally:
            if token is not None:
                _REUSED.reset(token)

    def _build(self, mask: Tensor, batch: int) -> None:
        self.shape = (batch, mask.shape[1])
        flat = mask.reshape(-1)
        self.active = mask.shape[0] == batch and batch * mask.shape[1] > 0
        if self.active:
            real = int(flat.sum())
            self.active = real <= (1 - MIN_PADDING) * flat.numel()
        self.index = flat.nonzero().squeeze(1) if self.active else None
        self.padding = (~flat).nonzero().squeeze(1) if self.active else None
        self.mask = None if self.active else mask

    def pack(self, values: Tensor) -> Tensor:
        if not self.active:
            return values
        return values.reshape(-1, values.shape[-1]).index_select(0, self.index)

    def unpack(self, rows: Tensor) -> Tensor:
        if not self.active:
            return rows
        B, N = self.shape
        out = rows.new_empty(B * N, rows.shape[-1]).index_fill_(0, self.padding, 0.0)  # zeros at the padding only
        return out.index_copy_(0, self.index, rows).view(B, N, rows.shape[-1])  # in place: no clone
