"""The WebUI fixture lives in webui_client.py, beside the HTTP helpers the tests import."""
from webui_client import webui  # noqa: F401
