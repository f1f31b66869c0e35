"""The WebUIs the tests run in: each host (its harness build, scripts and probes), its tiny models and its servers.

Adding a host or a model is one entry in HOSTS. A test says where it runs with the `webui` marker (conftest.py):
by default on the first model ("sd1") of each host's "ui" server; `models="all"` for tests whose subject depends on
the model (SDXL crop coordinates, pooled vectors, per-view prompts, ControlNet). Its test ids are
`<host>-<model>` on a "ui" server and `<host>-<server>-<model>` on another one (`a1111-sd1`, `forge-sdxl`,
`a1111-api-sd1`).

A server serves each of its models from one process, switching checkpoints through the options API
(`sd_model_checkpoint`). The harnesses are described in ../shared/webui-harness/README.md and
../shared/forge-harness/README.md.
"""
import os
import pathlib
from dataclasses import dataclass, field

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
README_FOLDER = "sd-webui-demofusion-ext"      # the folder name README tells users to clone into
ALL = "all"                                    # the `webui` marker's models="all": every model of the host


@dataclass(frozen=True)
class Model:
    checkpoint: str                   # file name in the host's models/Stable-diffusion
    sdxl: bool = False
    controlnet: str | None = None     # the harness's tiny ControlNet for it (a prefix of its name in the model list)
    in_all: bool = True               # one of the `webui` marker's models=ALL (False: only tests that name it)


@dataclass(frozen=True)
class Server:
    port: int
    folder: str                       # the name this checkout is linked under in extensions/
    ui: bool = True                   # gradio UI and API (--ui); False: API only (--nowebui)
    models: tuple[str, ...] | None = None     # the host's models it serves (None: all)
    about: str = ""


@dataclass(frozen=True)
class Host:
    name: str                         # the first word of test ids
    title: str
    build_env: str                    # the environment variable naming the harness build (default ~/<build>)
    build: str
    scripts: pathlib.Path             # the harness's scripts: setup.sh, start and stop
    tree: str                         # the WebUI's folder inside the build
    start: str
    stop: str
    log: str                          # the server log's name in <build>/run, by port
    models: dict[str, Model]
    servers: dict[str, Server]
    spare_port: int                   # one-off servers of single tests (servers.extra_server)
    probes: dict[str, str]            # test-only extensions: the link name in extensions/ -> their folder in tests/webui
    controlnet_unit: dict = field(default_factory=dict)     # what a ControlNet unit of this host needs besides
    base: int | None = None           # the base side of cheap requests (sweeps) on a slow host (None: the test's)
    family: str = "a1111"             # "forge": a Forge host (its UNet patcher, built-in ControlNet, Forge extensions)
    refused_samplers: tuple[str, ...] = ()   # the samplers it lists that DemoFusion refuses (by name)
    builtins: tuple[str, ...] = ()    # the Forge built-ins it ships that tests use: "FreeU", "SAG", "MultiDiffusion"
    schedule_types: bool = True       # a Schedule type (and /sdapi/v1/schedulers); else it is in the sampler names
    # Forge Classic makes the first step of every sampling without the negative prompt (its CFG denoiser's
    # `0.0 <= step / total <= opts.skip_early_cond` holds at step 0 with the option at 0; measured: a 3-step 64 px
    # txt2img makes 5 UNet rows, not 6): 1 view row less per view in each sampling's first evaluation
    first_step_without_uncond: bool = False
    size_step: int = 8                # Width and Height are rounded to multiples of this (exo101's Neo: 64)
    # its API applies an `infotext` field (Forge 2 and Neo fail every such request: get_field_value's isinstance with
    # a parameterized generic; measured)
    infotext_api: bool = True
    # the step count of requests that name none (webui_client.plain_request): a slow host's fewer, as its model costs
    # more per step (tests whose subject is the step count name theirs)
    steps: int = 4

    @property
    def root(self) -> pathlib.Path:
        return pathlib.Path(os.environ.get(self.build_env, pathlib.Path.home() / self.build))

    @property
    def webui_dir(self) -> pathlib.Path:
        return self.root / self.tree

    @property
    def bin(self) -> pathlib.Path:
        return self.scripts

    def missing(self) -> str | None:
        if not (self.webui_dir / "launch.py").exists() or not (self.bin / self.start).exists():
            return (f"no {self.title} harness: build it with {self.bin / 'setup.sh'} (see its README), or point "
                    f"DEMOFUSION_WEBUI_{self.name.upper()}[_<SERVER>] at a running server")
        return None

    def served(self, server: str) -> list[str]:
        return [m for m in self.models if self.servers[server].models is None or m in self.servers[server].models]


HOSTS = {
    "a1111": Host(
        "a1111", "A1111 WebUI v1.10.1", "WEBUI_HARNESS", "webui-harness", SHARED / "webui-harness" / "bin", "webui",
        "start_webui.sh", "stop_webui.sh", "webui-{port}.log",
        models={"sd1": Model("tiny-sd15.safetensors", controlnet="control_tiny_sd15"),
                "sdxl": Model("tiny-sdxl.safetensors", sdxl=True, controlnet="control_tiny_sdxl")},
        servers={
            # linked under a name that sorts before sd-webui-controlnet, which the harness installs
            "ui": Server(7876, "demofusion", about="UI and API; this checkout loads before sd-webui-controlnet"),
            "api": Server(7877, "zz-demofusion", ui=False, models=("sd1",),
                          about="API only (--nowebui); this checkout loads after sd-webui-controlnet"),
        },
        spare_port=7878,
        probes={"zz-dffault": "fault_probe", "zz-dfunet": "unet_probe", "zz-dfapply": "apply_probe",
                "zz-dfprobe": "cn_probe"},
        controlnet_unit={"module": "none", "save_detected_map": False},
        refused_samplers=("DPM adaptive", "DPM fast", "UniPC")),
    "forge": Host(
        "forge", "Forge 2", "FORGE_HARNESS", "forge-harness", SHARED / "forge-harness" / "bin", "forge",
        "start_forge.sh", "stop_forge.sh", "forge-{port}.log",
        models={"sd1": Model("tiny-forge-sd15.safetensors", controlnet="control_tiny-forge-sd15"),
                "sdxl": Model("tiny-forge-sdxl.safetensors", sdxl=True, controlnet="control_tiny-forge-sdxl")},
        servers={
            "ui": Server(7887, README_FOLDER, about="UI and API"),
            "api": Server(7888, README_FOLDER, ui=False, models=("sd1",), about="API only (--nowebui)"),
        },
        spare_port=7889,
        probes={"zz-dffault": "fault_probe", "zz-dfunet": "unet_probe"},
        # module "None" with a capital N and the model's full name with its hash, else Forge skips the unit silently
        controlnet_unit={"module": "None"},
        base=64, steps=2,              # its tiny models are full width and 7-10x slower
        infotext_api=False,
        family="forge", refused_samplers=("DPM adaptive", "DPM fast", "HeunPP2", "UniPC"),
        builtins=("FreeU", "SAG", "MultiDiffusion")),
    "classic": Host(
        "classic", "Forge Classic", "CLASSIC_HARNESS", "forge-classic-harness",
        REPO / "tests" / "hosts" / "forge-classic",
        "forge", "start_classic.sh", "stop_classic.sh", "classic-{port}.log",
        # the Forge 2 harness's SD1; a standard-depth SDXL (tests/hosts/tiny_models: Classic rejects Forge 2's KOALA)
        models={"sd1": Model("tiny-forge-sd15.safetensors", controlnet="control_tiny-forge-sd15"),
                "sdxl": Model("tiny-std-sdxl.safetensors", sdxl=True, controlnet="control_tiny-std-sdxl")},
        servers={
            "ui": Server(7893, README_FOLDER, about="UI and API"),
        },
        spare_port=7895,
        probes={"zz-dffault": "fault_probe", "zz-dfunet": "unet_probe"},
        controlnet_unit={"module": "None"},
        base=64, steps=2,
        family="forge", refused_samplers=("DPM adaptive", "DPM fast", "UniPC"),
        schedule_types=False, first_step_without_uncond=True),
    "neo": Host(
        "neo", "Forge Neo", "NEO_HARNESS", "forge-neo-harness", REPO / "tests" / "hosts" / "forge-neo",
        "forge", "start_neo.sh", "stop_neo.sh", "neo-{port}.log",
        models={"sd1": Model("tiny-forge-sd15.safetensors", controlnet="control_tiny-forge-sd15"),
                "sdxl": Model("tiny-std-sdxl.safetensors", sdxl=True, controlnet="control_tiny-std-sdxl"),
                # the same network, detected as v-prediction with zero terminal SNR (NoobAI-style markers)
                "vpred": Model("tiny-std-sdxl-vpred.safetensors", sdxl=True, controlnet="control_tiny-std-sdxl",
                               in_all=False),
                # a family DemoFusion refuses: an SDXL UNet with flow prediction and a Flux.2-latent VAE
                "mugen": Model("tiny-mugen.safetensors", in_all=False)},
        servers={
            "ui": Server(7896, README_FOLDER, about="UI and API"),
        },
        spare_port=7898,
        probes={"zz-dffault": "fault_probe", "zz-dfunet": "unet_probe"},
        controlnet_unit={"module": "None"},
        base=64, steps=2,
        family="forge", refused_samplers=("DPM++ 2s a RF", "UniPC"), builtins=("MultiDiffusion",),
        size_step=64,                  # modules/processing.py rounds them (measured: 64x48 -> 64x64)
        infotext_api=False),
}

FORGE_FAMILY = [name for name, host in HOSTS.items() if host.family == "forge"]
# one host of each family: where tests of the script's own logic run (the same code on every host of a family,
# checked once per family); tests whose subject is the host (its adapter, samplers, UI, ControlNet) run on all
REFERENCE = ["a1111", "forge"]
# the mark of such a test (a module's mark or the test's own may still name its models or servers)
SCRIPT_LOGIC = pytest.mark.webui(hosts=REFERENCE)


@dataclass(frozen=True)
class Target:
    """Where one test instance runs: a host's server and one of its models."""
    host: str
    server: str
    model: str

    @property
    def id(self) -> str:
        return "-".join([self.host] + ([] if self.server == "ui" else [self.server]) + [self.model])


def targets(hosts=None, models=("sd1",), servers=("ui",)) -> list[Target]:
    """The targets a `webui` marker names: every host in `hosts` (None: all), each of its `servers`, each of the
    `models` (ALL: every model) that the server serves."""
    out = []
    for name, host in HOSTS.items():
        if hosts is not None and name not in hosts:
            continue
        for server in servers:
            if server not in host.servers:
                continue
            for model in host.served(server):
                if (models == ALL and host.models[model].in_all) or model in models:
                    out.append(Target(name, server, model))
    return out
