"""Loaded by every Python process started with this folder on PYTHONPATH (see tests/netguard)."""

import os

if os.environ.get("PUBMINE_NETWORK_GUARD") == "1":
    import importlib.util
    import sys

    _spec = importlib.util.spec_from_file_location("_pubmine_netguard", os.path.join(os.path.dirname(__file__), "__init__.py"))
    _guard = importlib.util.module_from_spec(_spec)
    sys.modules["_pubmine_netguard"] = _guard
    _spec.loader.exec_module(_guard)
    _guard.install()
