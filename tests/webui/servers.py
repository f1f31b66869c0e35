"""Starting and stopping the harness WebUIs with this checkout installed, one place for every test.

The session's servers (hosts.py) start lazily, on their first test, and stop after their last one (conftest.py
plans that at collection). A server serves its models in turn from one process (tests run model by model): it
starts on the first, and takes each model's baseline images when the tests come to it, before any DemoFusion run on
that model.

DEMOFUSION_WEBUI_<HOST>[_<SERVER>] (e.g. DEMOFUSION_WEBUI_A1111, DEMOFUSION_WEBUI_FORGE_API): the URL of a
running server to use instead of starting one; tests that need its log, its folders or the probes skip there.
"""
import contextlib
import json
import os
import subprocess

import pytest

from hosts import HOSTS, REPO, Host, Target
from webui_client import BASELINES, WebUI, plain_request

HERE = REPO / "tests" / "webui"


def _of_this_project(link) -> bool:
    """A link to a checkout of this project (any checkout), or to a folder inside one (its probes)."""
    target = link.resolve()
    return any((d / "demofusion_ext").is_dir() for d in [target, *target.parents])


def link(host: Host, folder: str | None):
    """Link this checkout into the host's extensions/ as `folder` (None: not at all), and its probes; every other
    link to this project (another checkout's, or an interrupted run's) goes first."""
    ext = host.webui_dir / "extensions"
    ours = {folder, *host.probes}
    for p in ext.iterdir():
        # links left by another checkout's run (or an older suite's), even if that checkout is gone by now
        if p.is_symlink() and (_of_this_project(p) or p.name in ours or not p.exists()):
            p.unlink()
    if folder:
        (ext / folder).symlink_to(REPO)
    for name, probe in host.probes.items():
        (ext / name).symlink_to(HERE / probe)


def unlink_all():
    """Remove every link into this checkout that the servers made (at the end of the session)."""
    for host in HOSTS.values():
        ext = host.webui_dir / "extensions"
        if not ext.is_dir():
            continue
        for p in ext.iterdir():
            if p.is_symlink() and (p.resolve() == REPO or REPO in p.resolve().parents):
                p.unlink()


def start(host: Host, port: int, model: str, ui: bool, folder: str | None, args=(), disabled=()):
    """Start a harness server on `port` with this checkout linked as `folder`; `disabled`: extension folders it
    must not load (through a settings file of its own). Returns its log path."""
    link(host, folder)
    env = dict(os.environ, PORT=str(port),
               CKPT=str(host.webui_dir / "models" / "Stable-diffusion" / host.models[model].checkpoint))
    env.pop("EXTENSION", None)
    args = list(args)
    if disabled:
        settings = host.root / "run" / f"settings-{port}.json"
        settings.parent.mkdir(exist_ok=True)
        settings.write_text(json.dumps({"disabled_extensions": list(disabled)}))
        args += ["--ui-settings-file", str(settings)]
    subprocess.run([str(host.bin / host.stop), str(port)], env=env, capture_output=True)
    out = subprocess.run([str(host.bin / host.start)] + (["--ui"] if ui else []) + args, env=env,
                         capture_output=True, text=True)
    if out.returncode:
        stop(host, port)
        pytest.fail(f"{host.title} did not start on port {port}: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    STARTS.append((host.name, port))
    return host.root / "run" / host.log.format(port=port)


def stop(host: Host, port: int):
    subprocess.run([str(host.bin / host.stop), str(port)], capture_output=True,
                   env=dict(os.environ, **{host.build_env: str(host.root)}))


STARTS = []                         # (host, port) of every server started in this session


@contextlib.contextmanager
def extra_server(host_name: str, model="sd1", folder: str | None = "", disabled=(), ui=False):
    """A one-off server for one test (a host without this extension, or without another one), on the host's spare
    port; `folder` "" links this checkout as the host's ui server does, None not at all. Stopped when the block
    ends."""
    host = HOSTS[host_name]
    if host.missing():
        pytest.skip(host.missing())
    port = host.spare_port
    log = start(host, port, model, ui, host.servers["ui"].folder if folder == "" else folder, disabled=disabled)
    try:
        yield WebUI(f"http://127.0.0.1:{port}", host, model, log)
    finally:
        stop(host, port)


class Running:
    """One session server: its process, the model loaded now and one WebUI per model."""

    def __init__(self, host: Host, server: str, url: str, log, model: str):
        self.host, self.server, self.url, self.log, self.model = host, server, url, log, model
        self.handles = {}

    def switch(self, model: str):
        if model == self.model:
            return
        ui = WebUI(self.url, self.host, model, self.log)
        status, r = ui.call("POST", "/sdapi/v1/options", {"sd_model_checkpoint": self.host.models[model].checkpoint})
        assert status == 200, r
        self.model = model
        # a model loaded again after another one need not draw the images it drew before (seen on A1111 with SDXL
        # after SD1): its baselines are taken again, before any DemoFusion run on it (tests run model by model)
        self.handles.pop(model, None)

    def check_loaded(self):
        """The server's checkpoint is still this session's: a test that changed it fails the next test here, by
        name, instead of every later test failing on the wrong model (Forge 2's UI selects its start-up checkpoint
        again whenever a page loads: docs/HOSTS.md)."""
        now = WebUI(self.url, self.host, self.model, self.log).get("/sdapi/v1/options")["sd_model_checkpoint"]
        assert now.startswith(checkpoint_stem(self.host, self.model)), \
            f"{self.host.title} on {self.url} has {now!r} selected, not {self.model!r}: an earlier test changed it"

    def handle(self, model: str, baselines=()) -> WebUI:
        """The model's WebUI, loaded; its first call takes its baselines (the plain one and those named)."""
        self.switch(model)
        self.check_loaded()
        if model not in self.handles:
            ui = WebUI(self.url, self.host, model, self.log, server=self.server)
            status, r = ui.txt2img(plain_request())
            assert status == 200, r
            assert json.loads(r["info"])["sd_model_name"] == checkpoint_stem(self.host, model), \
                (model, json.loads(r["info"])["sd_model_name"])
            ui.baseline = r["images"][0]
            for name in baselines:
                try:
                    status, r = ui.txt2img(BASELINES[name](ui))
                except pytest.skip.Exception:          # its test skips, saying why
                    continue
                assert status == 200, (name, r)
                ui.baselines[name] = r["images"][0]
            self.handles[model] = ui
        return self.handles[model]


def checkpoint_stem(host, model):
    return host.models[model].checkpoint.rsplit(".", 1)[0]


class Session:
    """The session's servers, started as their first tests come."""

    def __init__(self):
        self.baselines: dict[tuple[str, str], set[str]] = {}      # the BASELINES its tests name
        self.running: dict[tuple[str, str], Running] = {}
        self.broken: dict[tuple[str, str], str] = {}             # servers that did not start: why

    def webui(self, target: Target) -> WebUI:
        key = (target.host, target.server)
        if key in self.broken:
            pytest.fail(self.broken[key])
        if key not in self.running:
            try:
                self.running[key] = self._start(target)
            except pytest.fail.Exception as e:
                self.broken[key] = f"(again) {e}"
                raise
        return self.running[key].handle(target.model, sorted(self.baselines.get(key, ())))

    def _start(self, target: Target) -> Running:
        host, spec = HOSTS[target.host], HOSTS[target.host].servers[target.server]
        env_name = "DEMOFUSION_WEBUI_" + "_".join([target.host] + ([] if target.server == "ui" else [target.server]))
        url = os.environ.get(env_name.upper())
        if url:
            current = WebUI(url, host, target.model).get("/sdapi/v1/options")["sd_model_checkpoint"]
            model = next((m for m in host.models if current.startswith(checkpoint_stem(host, m))), None)
            running = Running(host, target.server, url.rstrip("/"), None, model)
        else:
            if host.missing():
                pytest.skip(host.missing())
            # start on the first model the tests use: Forge's UI selects the start-up checkpoint again at every page
            # load, and the browser tests run on the first model
            log = start(host, spec.port, target.model, spec.ui, spec.folder)
            running = Running(host, target.server, f"http://127.0.0.1:{spec.port}", log, target.model)
        running.started = url is None
        try:
            running.handle(target.model, sorted(self.baselines.get((target.host, target.server), ())))
        except BaseException:
            if running.started:
                stop(host, spec.port)
            raise
        return running

    def stop(self, host: str, server: str):
        running = self.running.pop((host, server), None)
        if running is not None and running.started:
            stop(running.host, HOSTS[host].servers[server].port)

    def stop_all(self):
        for key in list(self.running):
            self.stop(*key)
        self.broken.clear()
        unlink_all()


SESSION = Session()
