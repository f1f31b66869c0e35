"""The fused prediction (docs/ALGORITHM.md section 3): one model evaluation of a phase >= 2, made of views.

P = (1 - c2) * mean of the local window predictions + c2 * the dilated predictions written back on
their sub-grids. Views of equal shape share model calls (local and global together), up to
`view_batch_size` views per call; the rows of a call are view-major: [view 0 rows, view 1 rows, ...].
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .blur import gaussian_blur
from .view_batch import ViewBatch
from .views import Layout, View
from .anti_repetition.window_interaction import cell_permutations, shuffle_views, unshuffle_views

Predict = Callable[..., torch.Tensor]
Condition = Callable[[Sequence[View]], dict]


def _by_shape(items: list) -> list[list]:
    """Items grouped by view shape: only views of one shape can share a model call."""
    groups: dict[tuple[int, int], list] = {}
    for item in items:
        groups.setdefault((item[0].height, item[0].width), []).append(item)
    return list(groups.values())


def fused_prediction(predict: Predict, x: torch.Tensor, layout: Layout, *, c2: float, blur_sigma: float,
                     view_batch_size: int | ViewBatch = 16, condition: Condition | None = None,
                     input_slope: torch.Tensor | float | None = None,
                     interaction: torch.Generator | None = None) -> torch.Tensor:
    """Fuse the model's raw predictions over the views of `layout`.

    predict(x_views, **condition(views)) returns raw predictions (eps, or v) for stacked views;
    `condition`, when given, slices spatial or per-view conditioning for the views of that call.
    `x` is the model input [B, C, H, W]. Fusing means fusing eps: a prediction that is not eps depends
    on the input at a fixed eps, so a global view's prediction is moved from the blurred input to the
    real one by `input_slope` (per row) times the difference: 0 (or None) for eps, 1 for x0
    (x0 = x - sigma eps), -sigma for v on the scaled input (v = (eps - sqrt(1 - a) x) / sqrt(a)).
    A call that runs out of memory is retried in smaller batches (see view_batch.py). Sums are accumulated in
    float32 whatever the model's dtype, and the result comes back in x's dtype.
    With `interaction` (a generator: window_interaction.py), the global views swap their blurred values per
    (channel, cell) before the model and their predictions back after it, before the `input_slope` correction.
    """
    rows = x.shape[0]
    use_local, use_global = c2 < 1, c2 > 0
    jh, jw = layout.local_pad
    local_input = F.pad(x, (jw, jw, jh, jh)) if use_local and (jh or jw) else x
    ph, pw = layout.dilated_pad
    if use_global:
        # blurred and renormalised with the padding to a multiple of d, as the reference does; the further rows
        # that round a view up for the model (size_multiple) are zeros outside those statistics
        d = layout.dilation
        dh, dw = (-x.shape[-2]) % d, (-x.shape[-1]) % d
        blurred = gaussian_blur(F.pad(x, (dw, 0, dh, 0)), d, blur_sigma)
        if (ph, pw) != (dh, dw):
            blurred = F.pad(blurred, (pw - dw, 0, ph - dh, 0))

    # work items (view, where, src): the model input is where.extract(src), or src itself when where is None
    work, interact = [], use_global and interaction is not None
    if use_local:
        work += [(v, _shifted(v, jh, jw), local_input) for v in layout.local]
    if use_global:
        dilated = [(v, _shifted(v, ph, pw)) for v in layout.dilated]
        if interact:
            slots, perm = _shuffled_inputs(dilated, blurred, interaction)
            work += [(v, None, slot) for (v, _), slot in zip(dilated, slots)]
            slot_of, slot_preds = {v: k for k, (v, _) in enumerate(dilated)}, [None] * len(dilated)
        else:
            work += [(v, where, blurred) for v, where in dilated]

    acc = torch.promote_types(x.dtype, torch.float32)
    value_local = torch.zeros_like(local_input, dtype=acc) if use_local else None
    count_local = torch.zeros_like(local_input[:1, :1], dtype=acc) if use_local else None
    value_global = torch.zeros_like(x, dtype=acc) if use_global else None

    def call(batch):
        views = [item[0] for item in batch]
        x_views = torch.cat([src if where is None else where.extract(src) for _, where, src in batch])
        return predict(x_views, **(condition(views) if condition is not None else {}))

    batches = view_batch_size if isinstance(view_batch_size, ViewBatch) else ViewBatch(view_batch_size)
    for group in _by_shape(work):
        for batch, out in batches.run(group, call):
            for i, (view, where, _) in enumerate(batch):
                pred = out[i * rows:(i + 1) * rows]
                if view.kind == "local":
                    _add_window(value_local, count_local, where, pred)
                elif interact:
                    slot_preds[slot_of[view]] = pred
                else:
                    _write_global(value_global, view, where, pred, x, blurred, input_slope)
    if interact:
        for (view, where), pred in zip(dilated, unshuffle_views(torch.stack(slot_preds), perm)):
            _write_global(value_global, view, where, pred, x, blurred, input_slope)

    if use_local:
        local = value_local / count_local
        if jh or jw:
            local = local[..., jh:jh + x.shape[-2], jw:jw + x.shape[-1]]
        if not use_global:
            return local.to(x.dtype)
    if not use_local:
        return value_global.to(x.dtype)
    return (local * (1 - c2) + value_global * c2).to(x.dtype)


def _shuffled_inputs(dilated: list[tuple[View, View]], blurred: torch.Tensor, generator: torch.Generator):
    """The global views' blurred inputs swapped among them per (channel, cell): ([n, rows, C, gh, gw], perm)."""
    stack = torch.stack([where.extract(blurred) for _, where in dilated])
    perm = cell_permutations(stack.shape[0], *stack.shape[2:], generator=generator).to(blurred.device)
    return shuffle_views(stack, perm), perm


def _write_global(value: torch.Tensor, view: View, where: View, pred: torch.Tensor, x: torch.Tensor,
                  blurred: torch.Tensor, input_slope):
    """A global view's prediction, moved from its own blurred input to x's values, written on its sub-grid."""
    if input_slope is not None:
        pred = pred + _as_rows(input_slope, pred) * (view.extract(x) - where.extract(blurred))
    _write_subgrid(value, view, pred)


def _shifted(v: View, dh: int, dw: int) -> View:
    return dataclasses.replace(v, top=v.top + dh, left=v.left + dw)


def _add_window(value: torch.Tensor, count: torch.Tensor, where: View, pred: torch.Tensor):
    sl = (..., slice(where.top, where.top + where.height), slice(where.left, where.left + where.width))
    value[sl] += pred
    count[sl] += 1


def _write_subgrid(value: torch.Tensor, view: View, pred: torch.Tensor):
    """Write a global view's prediction back on its sub-grid, dropping the rows/cols that were padding."""
    d = view.step
    r0, c0 = view.top, view.left
    skip_r, skip_c = (-r0 + d - 1) // d if r0 < 0 else 0, (-c0 + d - 1) // d if c0 < 0 else 0
    value[..., r0 + skip_r * d::d, c0 + skip_c * d::d] = pred[..., skip_r:, skip_c:]


def _as_rows(v, like: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    return v.view(-1, 1, 1, 1) if v.ndim == 1 else v
