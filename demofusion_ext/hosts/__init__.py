"""Host adapters: the only modules that import a WebUI's `modules`.

interface.py declares what differs between hosts; a1111.py, forge.py (Forge 2), forge_classic.py and forge_neo.py
implement it, one host each (the last two override only what their backends name differently from Forge 2). The
rest is shared by every host: refusals.py, phase_loop.py (around `p.sample`), sampler_hooks.py (a phase's sampler),
model_call.py (the fused model call), pictures.py (VAE and upscaler), view_prompts.py (per-view prompts).
"""


def forge_variant() -> str:
    """Which Forge: its version string says "classic", "neo", or Forge 2's "2.0.1v1.10.1" (and reForge's own)."""
    try:
        from modules_forge import forge_version
    except ImportError:
        return ""
    return str(getattr(forge_version, "version", ""))


def host_for(model):
    """The adapter for the loaded model's host, chosen at each generation: Forge's model object carries
    `forge_objects`, A1111's does not; Forge hosts say which they are in `modules_forge.forge_version`."""
    if hasattr(model, "forge_objects"):
        variant = forge_variant()
        if variant == "classic":
            from .forge_classic import ForgeClassic
            return ForgeClassic()
        if variant == "neo":
            from .forge_neo import ForgeNeo
            return ForgeNeo()
        from .forge import Forge
        return Forge()
    from .a1111 import A1111
    return A1111()
