"""A guard against network traffic beyond this machine, for the test session and every process it
starts (Ray workers, the CLI under test): ``socket.connect``/``connect_ex`` to an address that is
neither loopback nor one of this machine's own (Ray binds to the machine's address) raises, and the
attempt is appended to the file ``$PUBMINE_NETWORK_GUARD_LOG`` so that a swallowed error still shows.

Installed in-process by ``install()`` (tests/conftest.py does it for the session) and in child
processes by ``sitecustomize.py`` in this folder, which the session puts first on PYTHONPATH with
PUBMINE_NETWORK_GUARD=1.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket

_LOCAL: dict[str, bool] = {}
# Attempts that are refused like any other but do not fail the session, each with its reason. Ray's
# dashboard asks the cloud metadata address which cloud it is on at every start, even with usage
# stats disabled (ray/_common/usage/usage_lib.py: get_cloud_from_metadata_requests, called from the
# dashboard's usage_stats_head.run); the guard refuses it before any packet leaves.
KNOWN = [("ray/_common/usage/usage_lib.py", "Ray dashboard's cloud-metadata probe (refused)")]


class NetworkGuardError(OSError):
    """A connection to an address beyond this machine, refused by the test session's guard."""


def is_local(host: str) -> bool:
    """Loopback, or an address of this machine (it can be bound to)."""
    if host in _LOCAL:
        return _LOCAL[host]
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:  # a name: only localhost names are allowed without a lookup
        ok = host in ("localhost", "localhost.localdomain")
    else:
        ok = ip.is_loopback or ip.is_unspecified
        if not ok:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as probe:
                    probe.bind((host, 0))
                ok = True
            except OSError:
                ok = False
    _LOCAL[host] = ok
    return ok


def _check(sock: socket.socket, address) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return
    host = str(address[0])
    if not is_local(host):
        where = os.environ.get("PUBMINE_NETWORK_GUARD_LOG")
        if where:
            import sys
            import traceback

            stack = traceback.extract_stack()[:-2]
            known = next((why for marker, why in KNOWN if any(f.filename.endswith(marker) for f in stack)), "")
            caller = " < ".join(f"{os.path.basename(f.filename)}:{f.lineno}" for f in stack[-6:][::-1])
            with open(where, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()} {host}:{address[1]} ({os.path.basename(sys.argv[0] or '?')}: {caller})"
                        f"{' KNOWN: ' + known if known else ''}\n")
        raise NetworkGuardError(f"network guard: connection to {host}:{address[1]} refused (tests reach loopback only)")


def install() -> None:
    if getattr(socket.socket.connect, "_pubmine_guard", False):
        return
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    @functools.wraps(connect)
    def guarded_connect(self, address):
        _check(self, address)
        return connect(self, address)

    @functools.wraps(connect_ex)
    def guarded_connect_ex(self, address):
        _check(self, address)
        return connect_ex(self, address)

    guarded_connect._pubmine_guard = True
    socket.socket.connect, socket.socket.connect_ex = guarded_connect, guarded_connect_ex


def attempts(known: bool = False) -> list[str]:
    """What the guard refused so far, in every guarded process of this session (``known``: also the
    KNOWN attempts)."""
    where = os.environ.get("PUBMINE_NETWORK_GUARD_LOG")
    if not where or not os.path.exists(where):
        return []
    with open(where, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and (known or " KNOWN: " not in line)]
