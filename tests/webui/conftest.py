"""The WebUI fixtures live in webui_client.py, beside the HTTP helpers the tests import."""
from webui_client import webui, webui_ui  # noqa: F401
