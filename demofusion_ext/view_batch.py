"""The number of views per model call, halved when a call runs out of memory and kept for the rest of the run.

The fusion is exact whatever the batch, so a retry with smaller batches gives the same prediction; only a
single view that does not fit is an error. The host's out-of-memory error is torch's (CUDA, ROCm, XPU), or a
RuntimeError saying so (MPS, older builds).
"""
from __future__ import annotations

import gc
from typing import Callable

import torch

_OOM = tuple(t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)) if t)


def is_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, _OOM) or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def _free_cache():
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class ViewBatch:
    def __init__(self, size: int, log: Callable[[str], None] = print):
        self.size, self.log, self.said = int(size), log, False

    def run(self, items: list, call: Callable[[list], torch.Tensor]):
        """Yield (chunk, call(chunk)) over `items` in order, in chunks of at most `size` items."""
        i, failed = 0, None
        while i < len(items):
            chunk = items[i:i + self.size]
            try:
                out = call(chunk)
            except Exception as e:
                if not is_out_of_memory(e) or len(chunk) == 1:
                    raise
                out = None
            if out is None:                 # outside `except`, so the failed call's tensors are freed first
                _free_cache()
                failed = failed or len(chunk)
                self.size = max(1, len(chunk) // 2)
                continue
            if failed and not self.said:    # said once a size fits, so the advice names a size that works
                self.log(f"[DemoFusion] out of memory with {failed} views per model call: using {self.size} "
                         f"(or fewer) for the rest of this generation; set View batch size to {self.size} "
                         f"to avoid the retry")
                self.said = True
            yield chunk, out
            i += len(chunk)
