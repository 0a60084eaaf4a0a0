"""Move this process into an empty network namespace so simulated traffic cannot leave.

Inside the namespace only the loopback interface exists: any address not added to it is
unreachable (ENETUNREACH), while servers bound on added public-looking addresses such as
185.199.108.10 are reachable from the same process and its children.

isolate_network() must run while the process is single-threaded: unshare() moves only the
calling thread, so threads started earlier would stay connected to the real network.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import ipaddress
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sH22x"  # struct ifreq: name[16] + ifr_flags, padded to the 40-byte union
# Errors meaning "namespaces are not available to us", as opposed to a real failure.
UNAVAILABLE = frozenset({errno.EPERM, errno.EACCES, errno.EINVAL, errno.ENOSYS})
NETNS_PATH = "/proc/self/ns/net"


def _netns_inode() -> int | None:
    """Return the inode identifying the current network namespace, if visible."""
    try:
        return os.stat(NETNS_PATH).st_ino
    except OSError:
        return None


_ORIGINAL_NETNS = _netns_inode()


def is_isolated() -> bool:
    """Tell whether this process left the network namespace it was started in."""
    current = _netns_inode()
    return current is not None and _ORIGINAL_NETNS is not None and current != _ORIGINAL_NETNS


def isolate_network(addresses: Iterable[str] = ()) -> bool:
    """Enter a new network namespace with loopback up and the given addresses on it.

    Returns False, changing nothing, when namespaces are not permitted (not root, or no
    namespace support). Raises RuntimeError when other threads are running or when
    addresses are asked for and iproute2's `ip` is missing.
    """
    wanted = [ipaddress.ip_address(a) for a in addresses]
    if threading.active_count() != 1:
        raise RuntimeError("isolate_network() must be called before any thread is started")
    ip_tool = shutil.which("ip")
    if wanted and ip_tool is None:
        raise RuntimeError("adding addresses to lo needs iproute2's `ip` command on PATH")
    if not sys.platform.startswith("linux") or not _unshare_net():
        return False
    _loopback_up()
    for address in wanted:
        assert ip_tool is not None
        _add_address(ip_tool, address)
    return True


def _unshare_net() -> bool:
    """Call unshare(CLONE_NEWNET); False when not permitted or not supported."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) == 0:
        return True
    err = ctypes.get_errno()
    if err in UNAVAILABLE:
        return False
    raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")


def _loopback_up() -> None:
    """Set IFF_UP on lo with ioctls, so no external tool is needed for the basic case."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(IFREQ, b"lo", 0)
        flags = struct.unpack(IFREQ, fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


def _add_address(ip_tool: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """Add a host address to lo; nodad makes an IPv6 address usable at once."""
    if address.version == 4:
        command = [ip_tool, "addr", "add", f"{address}/32", "dev", "lo"]
    else:
        command = [ip_tool, "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
