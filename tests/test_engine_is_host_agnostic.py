"""The folders show the architecture: only demofusion_ext/hosts/ may import a WebUI's modules."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "demofusion_ext"
HOSTS = PACKAGE / "hosts"
FORBIDDEN = {"gradio", "modules", "ldm", "sgm", "k_diffusion", "diffusers", "backend"}


def imported(path):
    """(module, level) of every import in a file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((a.name, 0) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def test_engine_and_standalone_driver_import_neither_gradio_nor_webui_modules():
    files = [p for p in PACKAGE.rglob("*.py") if HOSTS not in p.parents]
    assert len(files) > 10
    for path in files:
        for name, level in imported(path):
            assert level or name.split(".")[0] not in FORBIDDEN, f"{path.relative_to(PACKAGE)} imports {name}"
            assert "hosts" not in name.split("."), f"{path.relative_to(PACKAGE)} reaches into the host adapters"


def test_each_host_adapter_imports_only_the_shared_webui_module_never_the_other_host():
    for name, other in (("a1111.py", "forge"), ("forge.py", "a1111")):
        for module, level in imported(HOSTS / name):
            assert other not in module.split("."), f"hosts/{name} imports {module}"
