"""Per-token cross-attention maps of phase 1, for per-view prompts (AccDiffusion).

The WebUIs' optimised attention never forms the probabilities, so they are recomputed from the projections:
forward hooks on every cross-attention's `to_q` (keep q) and `to_k` (q and k are now known) compute
softmax(q k^T / sqrt(d)) in float32 for the cond rows only, averaged over heads, and add it to one running sum per
(image row, query grid). Hooks on the projections fire under any attention implementation (A1111's optimisations,
Forge's attention function, LoRA and hypernetwork wrappers), and the model's own output is never touched.

Memory stays bounded: one float32 sum of tokens x queries per image and grid size, whatever the step count.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch

from .prompt_masks import MapAccumulator

RowRoles = Callable[[int], "list[int | None]"]


def cross_attentions(unet: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The cross-attention modules of the UNet's input and output blocks (the middle is left out, as AccDiffusion
    does): modules named `attn2` with `to_q`, `to_k` and `heads`."""
    found = []
    for name, module in unet.named_modules():
        if name.endswith("attn2") and "middle" not in name and "mid_block" not in name and \
                all(hasattr(module, a) for a in ("to_q", "to_k", "heads")):
            found.append((name, module))
    return found


class AttentionCapture:
    """Running sums of per-token attention maps, by (image, queries): `rows(n)` says, for the n rows of the model
    call in progress, which image each cond row belongs to (None for the other rows)."""

    def __init__(self, rows: RowRoles, target_queries: int | None = None):
        self.rows = rows
        self.sums = MapAccumulator()          # (image, queries) -> [tokens, queries, 1]
        self.calls = 0
        # once a layer at the wanted grid has been seen, the other grids are not computed any more
        self.target, self.seen = target_queries, set()

    @contextlib.contextmanager
    def hooked(self, unet: torch.nn.Module) -> Iterator["AttentionCapture"]:
        """Hooks on every cross-attention of `unet`, removed on exit whatever happens."""
        handles = []
        try:
            for _, attn in cross_attentions(unet):
                handles += self._hook(attn)
            yield self
        finally:
            for h in handles:
                h.remove()

    def _hook(self, attn: torch.nn.Module) -> list:
        stash = {}

        def keep_q(_module, _inputs, q):
            stash["q"] = q

        def record(_module, _inputs, k):
            q = stash.pop("q", None)
            if q is None or q.shape[0] != k.shape[0]:
                return
            self.seen.add(q.shape[1])
            if self.target in self.seen and q.shape[1] != self.target:
                return
            roles = self.rows(q.shape[0])
            picked = [(i, image) for i, image in enumerate(roles) if image is not None]
            if picked:
                self._add(q, k, attn.heads, picked)
        return [attn.to_q.register_forward_hook(keep_q), attn.to_k.register_forward_hook(record)]

    @torch.no_grad()
    def _add(self, q: torch.Tensor, k: torch.Tensor, heads: int, picked: list[tuple[int, int]]):
        index = torch.tensor([i for i, _ in picked], device=q.device)
        q, k = q.index_select(0, index).float(), k.index_select(0, index).float()
        n, queries, inner = q.shape
        d = inner // heads
        q = q.view(n, queries, heads, d).transpose(1, 2)
        k = k.view(n, k.shape[1], heads, d).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1).mean(1)     # [n, queries, tokens]
        for row, (_, image) in enumerate(picked):
            try:
                self.sums.add((image, queries), probs[row].transpose(0, 1).unsqueeze(-1).cpu())
            except ValueError:          # another token count (a later prompt-editing entry): the first one counts
                pass
        self.calls += 1

    @property
    def nbytes(self) -> int:
        return self.sums.nbytes

    def maps(self, image: int, latent_hw: tuple[int, int], target_factor: int = 4) -> torch.Tensor | None:
        """[tokens, h, w] mean map of `image` at the grid latent / target_factor if any layer has it, else at the
        coarsest grid recorded (small test models lack the deep levels); None if nothing was recorded."""
        grids = {q for (img, q) in self.sums.keys() if img == image}
        if not grids:
            return None
        lh, lw = latent_hw
        target = (lh // target_factor) * (lw // target_factor)
        queries = target if target in grids else min(grids)
        f = math.sqrt(lh * lw / queries)
        h, w = round(lh / f), round(lw / f)
        if h * w != queries:
            return None
        return self.sums.mean((image, queries)).view(-1, h, w)
