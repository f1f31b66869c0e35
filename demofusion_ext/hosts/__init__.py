"""Host adapters: the only modules that import a WebUI's `modules`.

interface.py declares what differs between hosts; a1111.py and forge.py implement it, one host each. The rest is
shared by every host: refusals.py, phase_loop.py (around `p.sample`), sampler_hooks.py (a phase's sampler),
model_call.py (the fused model call), pictures.py (VAE and upscaler), view_prompts.py (per-view prompts).
"""


def host_for(model):
    """The adapter for the loaded model's host, chosen at each generation: Forge's model object carries
    `forge_objects`, A1111's does not."""
    if hasattr(model, "forge_objects"):
        from .forge import Forge
        return Forge()
    from .a1111 import A1111
    return A1111()
