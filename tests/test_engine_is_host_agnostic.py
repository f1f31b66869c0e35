import ast
import pathlib

ENGINE = pathlib.Path(__file__).resolve().parent.parent / "demofusion_ext"
HOST_ADAPTERS = {"host_webui.py", "host_a1111.py", "host_forge.py"}  # host_webui: what both share


def test_engine_imports_neither_gradio_nor_webui_modules():
    for path in ENGINE.glob("*.py"):
        if path.name in HOST_ADAPTERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                assert name.split(".")[0] not in {"gradio", "modules", "ldm", "sgm", "k_diffusion", "diffusers", "backend"}, \
                    f"{path.name} imports {name}"


def test_forge_never_reaches_the_a1111_adapter_and_back():
    """Each host adapter imports only the shared WebUI module, never the other host's adapter."""
    for name, other in (("host_a1111.py", "host_forge"), ("host_forge.py", "host_a1111")):
        assert other not in (ENGINE / name).read_text()
