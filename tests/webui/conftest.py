"""The `webui` marker and fixture: which hosts, servers and models a test runs on, chosen at collection.

    @pytest.mark.webui                         # default: the first model (SD1) of each host's "ui" server
    @pytest.mark.webui(models=ALL)             # every model: the test's subject depends on the model
    @pytest.mark.webui(hosts=["forge"])        # one host (a module's pytestmark too; the closest mark wins per key)
    @pytest.mark.webui(servers=["ui", "api"])  # also on the host's API-only server (hosts.py)
    @pytest.mark.webui(baselines=["controlnet"])  # the server also takes these images before any DemoFusion run

A test that takes the `webui` fixture runs once per target (ids like `a1111-sd1`, `forge-sdxl`, `a1111-api-sd1`);
without a mark it gets the default. Tests are ordered by host, server and model, so each server starts at its
first test (only when a collected test needs it: `pytest tests/webui/test_forge.py` starts only Forge) and stops
after its last one.
"""
import pytest

from hosts import targets
from servers import SESSION, STARTS

KEYS = ("hosts", "models", "servers", "baselines")


def pytest_configure(config):
    config.addinivalue_line("markers", "webui(hosts=None, models=('sd1',), servers=('ui',), baselines=()): the WebUI "
                                       "targets of a test that takes the webui fixture (tests/webui/hosts.py), and "
                                       "the baseline images it needs (webui_client.BASELINES)")


def marked(node) -> dict:
    """The `webui` mark's keywords, each from the closest mark that sets it."""
    out = {}
    for mark in node.iter_markers("webui"):
        for key, value in mark.kwargs.items():
            assert key in KEYS, f"unknown webui mark keyword {key!r}"
            out.setdefault(key, value)
    return out


def pytest_generate_tests(metafunc):
    if "webui" in metafunc.fixturenames:
        mark = marked(metafunc.definition)
        mark.pop("baselines", None)
        found = targets(**mark)
        metafunc.parametrize("webui", found, indirect=True, ids=[t.id for t in found])


def target_of(item):
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("webui") if callspec is not None else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """Order the WebUI tests by host, server and model (keeping their order otherwise); note the baselines each
    server takes and which test is its last."""
    from hosts import HOSTS
    hosts = list(HOSTS)

    def key(pair):
        index, item = pair
        t = target_of(item)
        if t is None:
            return (0, index)
        host = HOSTS[t.host]
        return (1, hosts.index(t.host), list(host.servers).index(t.server), list(host.models).index(t.model), index)
    items[:] = [item for _, item in sorted(enumerate(items), key=key)]
    SESSION.baselines.clear()
    LAST.clear()
    for item in items:
        t = target_of(item)
        if t is not None:
            SESSION.baselines.setdefault((t.host, t.server), set()).update(marked(item).get("baselines", ()))
            LAST[(t.host, t.server)] = item.nodeid


LAST = {}                 # (host, server) -> the node id of its last test


@pytest.fixture
def webui(request):
    """The target's WebUI (webui_client.WebUI): its server started (or found running), its model loaded."""
    return SESSION.webui(request.param)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    for key, nodeid in list(LAST.items()):
        if nodeid == item.nodeid:
            SESSION.stop(*key)


def pytest_sessionfinish(session, exitstatus):
    SESSION.stop_all()


def pytest_terminal_summary(terminalreporter):
    if STARTS:
        terminalreporter.write_line(f"WebUI servers started: {len(STARTS)} "
                                    f"({', '.join(f'{h}:{p}' for h, p in STARTS)})")
