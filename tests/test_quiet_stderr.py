"""The driver leaves out Ray's C++ "E" line about actor constructor arguments (a line that reads like
a failure when nothing failed) and nothing else that reaches file descriptor 2."""

import subprocess
import sys

CODE = r"""
import os, sys
from pipeline.driver.session import without_harmless_ray_lines
print("before", file=sys.stderr, flush=True)
with without_harmless_ray_lines():
    os.write(2, b"[2026 E 1 1] core_worker.cc:2465: Actor with class name: 'MapWorker(X)' has constructor arguments in the object store and max_restarts > 0. See ray#53727\n")
    os.write(2, b"[2026 E 1 1] core_worker.cc:99: a real failure\n")
    print("python side", file=sys.stderr, flush=True)
    os.write(2, b"partial line without newline")
print("after", file=sys.stderr, flush=True)
os.write(2, b"fd2 restored\n")
"""


def test_harmless_ray_line_left_out_everything_else_kept():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    err = out.stderr
    assert "constructor arguments" not in err
    for kept in ("before", "a real failure", "python side", "partial line without newline", "after", "fd2 restored"):
        assert kept in err, (kept, err)
    assert err.index("before") < err.index("a real failure") and err.index("after") < err.index("fd2 restored")
