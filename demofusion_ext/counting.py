"""The old name of model_calls.py, kept while hosts/ still import EvalCounter from here."""
from .model_calls import CallCounter as EvalCounter  # noqa: F401
