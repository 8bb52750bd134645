"""Pointwise layers on the real rows of a padded batch only (the packed layout).

A batch of molecules of 3-29 atoms padded to 29 is about a third padding; Linear layers, batch norm
and Swish of width k = 1536 would spend that third on rows whose result is thrown away.
``RowPacking`` gathers the real rows of values (B, N, c) into (P, c) and scatters results back
(zeros at the padding), both differentiable to any order.  It packs only when the batch has its own
mask per example and at least ``MIN_PADDING`` of it is padding; otherwise both maps are the identity.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["RowPacking", "MIN_PADDING"]

#: pack when at least this fraction of the rows is padding (below it the copies cost more than they save)
MIN_PADDING = 0.125


class RowPacking:
    """The real rows of (B, N, c) values under ``mask`` (Bg, N).

    ``pack(values)`` -> (P, c) (or the values themselves when not packing), ``unpack(rows, c)`` ->
    (B, N, c) with zeros at the padding, ``mask``: the mask that goes with packed values (None: every
    row is real) or the original one.
    """

    def __init__(self, mask: Tensor, batch: int):
        self.shape = (batch, mask.shape[1])
        flat = mask.reshape(-1)
        self.active = mask.shape[0] == batch and batch * mask.shape[1] > 0
        if self.active:
            real = int(flat.sum())
            self.active = real <= (1 - MIN_PADDING) * flat.numel()
        self.index = flat.nonzero().squeeze(1) if self.active else None
        self.mask = None if self.active else mask

    def pack(self, values: Tensor) -> Tensor:
        if not self.active:
            return values
        return values.reshape(-1, values.shape[-1]).index_select(0, self.index)

    def unpack(self, rows: Tensor) -> Tensor:
        if not self.active:
            return rows
        B, N = self.shape
        out = rows.new_zeros(B * N, rows.shape[-1]).index_copy_(0, self.index, rows)  # in place: no clone
        return out.view(B, N, rows.shape[-1])
