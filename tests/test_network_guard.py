"""The session's network guard (tests/netguard) refuses a deliberate connection beyond this machine, in
this process, in a child process and in a Ray worker, and lets loopback through."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import netguard

FAR = ("203.0.113.9", 80)  # TEST-NET-3: documentation only, never routed


@pytest.fixture
def forget_deliberate_attempts():
    """The attempts these tests make on purpose are taken back out of the session's log."""
    log = Path(os.environ["PUBMINE_NETWORK_GUARD_LOG"])
    before = log.read_text() if log.exists() else ""
    yield lambda: log.read_text()[len(before):] if log.exists() else ""
    log.write_text(before)


def test_network_guard_refuses_a_connection_beyond_this_machine(forget_deliberate_attempts):
    with pytest.raises(netguard.NetworkGuardError, match="203.0.113.9:80 refused"):
        socket.create_connection(FAR, timeout=1)
    with socket.socket() as s:
        with pytest.raises(netguard.NetworkGuardError):
            s.connect_ex(FAR)
    assert forget_deliberate_attempts().count("203.0.113.9:80") == 2


def test_network_guard_lets_loopback_and_this_machines_address_through():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
    assert netguard.is_local("127.0.0.1") and netguard.is_local("::1") and netguard.is_local("localhost")
    assert not netguard.is_local("203.0.113.9") and not netguard.is_local("example.org")


def test_network_guard_covers_child_processes(forget_deliberate_attempts):
    code = "import socket\ntry:\n socket.create_connection(('203.0.113.9', 80), timeout=1)\nexcept OSError as e:\n print(type(e).__name__, e)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "NetworkGuardError network guard: connection to 203.0.113.9:80 refused" in out.stdout, out.stdout + out.stderr
    assert "203.0.113.9:80" in forget_deliberate_attempts()


def test_network_guard_covers_ray_workers(ray_local, forget_deliberate_attempts):
    @ray_local.remote
    def reach_out():
        try:
            socket.create_connection(FAR, timeout=1)
        except OSError as exc:
            return type(exc).__name__
        return "connected"

    assert ray_local.get(reach_out.remote()) == "NetworkGuardError"
    assert "203.0.113.9:80" in forget_deliberate_attempts()
