"""transformers' per-tensor loading bars and deprecation chatter, silenced while sdelab loads or wraps a model."""
from __future__ import annotations

import contextlib
import warnings


@contextlib.contextmanager
def quiet_transformers():
    """transformers' per-tensor loading bars and deprecation chatter hide sdelab's own progress."""
    from transformers.utils import logging as hf_logging
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(verbosity)
