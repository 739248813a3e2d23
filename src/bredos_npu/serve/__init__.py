"""``bredos-npu serve``: detection as a DeepStack-compatible service, a native API and a web page.

Needs the ``[serve]`` extra (Starlette, uvicorn, python-multipart, prometheus-client). The core
(:mod:`bredos_npu.serve.engine`) knows nothing of HTTP; :mod:`bredos_npu.serve.app` speaks it.
"""

from __future__ import annotations

import importlib.util

from bredos_npu.errors import RuntimeMissingError

EXTRA_MODULES = ("starlette", "uvicorn", "multipart", "prometheus_client")


def require_extra() -> None:
    """RuntimeMissingError (exit 8) naming the extra when a package of ``[serve]`` is missing."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeMissingError(f"bredos-npu serve needs {', '.join(missing)}: "
                                  "pip install 'bredos-npu[serve]'.")
