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


# one module per host, each a Host subclass (hosts/interface.py), and the adapter it builds on (Forge 2's for the
# other Forge hosts, which override only the names their backends changed)
ADAPTERS = {"a1111": None, "forge": None, "forge_classic": "forge", "forge_neo": "forge"}


def test_a_host_adapter_imports_no_other_than_its_base():
    for name, base in ADAPTERS.items():
        for module, level in imported(HOSTS / f"{name}.py"):
            others = set(ADAPTERS) - {name, base}
            assert not others & set(module.split(".")), f"hosts/{name}.py imports {module}"
