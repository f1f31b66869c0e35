import ast
import pathlib

ENGINE = pathlib.Path(__file__).resolve().parent.parent / "demofusion_ext"
HOST_ADAPTERS = {"host_a1111.py", "host_forge.py"}


def test_engine_imports_neither_gradio_nor_webui_modules():
    for path in ENGINE.glob("*.py"):
        if path.name in HOST_ADAPTERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                assert name.split(".")[0] not in {"gradio", "modules", "ldm", "sgm", "k_diffusion", "diffusers"}, \
                    f"{path.name} imports {name}"
