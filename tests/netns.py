"""Separate network "hosts" on one Linux machine: a network namespace per host, joined to a
private link by a veth pair, for the multi-host test and ``python -m bench.multihost``.

The link is a bridge in a namespace of its own (so the root namespace's firewall never sees
the hosts' traffic); the root namespace gets an address on the same link (``.1``), so the
test process talks to the hosts directly. Each host has loopback and one address on the link
and no default route: its processes reach the link's addresses and loopback, nothing else.

Needs root (CAP_NET_ADMIN) and iproute2's ``ip``: :func:`unavailable_reason` says why not.
Everything is named ``pawdex-<pid>-…`` (namespaces) and ``px<pid>…`` (links), and
:meth:`Network.close` kills every process in the hosts and deletes every namespace and link
it made; a network left behind by a process that died (SIGKILL) is deleted by the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# 10.231.0.0/16 is unlikely to be anyone's: each network takes the first free /24 in it.
SUPERNET = ipaddress.ip_network("10.231.0.0/16")
_LOCK = Path("/run/lock/pawdex-netns.lock")
_STALE = re.compile(r"^pawdex-(\d+)-")
_counter = itertools.count()


class NetnsError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be made here (None: they can)."""
    if not os.path.isdir("/proc/self/ns") or not os.path.exists("/proc/self/ns/net"):
        return "not Linux with network namespaces"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN); the tests run as root in CI"
    probe = f"pawdex-{os.getpid()}-probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace ({made.stderr.strip()}): no CAP_NET_ADMIN?"
    pair = _ip("-n", probe, "link", "add", "pxprobe0", "type", "veth", "peer", "name", "pxprobe1",
             check=False)  # fmt: skip
    _ip("netns", "del", probe, check=False)
    if pair.returncode != 0:
        return f"cannot create a veth pair ({pair.stderr.strip()})"
    return None


@dataclass
class Host:
    """One namespace on the link: a "host" with one address."""

    role: str
    netns: str
    address: str
    link: str  # its end of the veth pair

    @property
    def prefix(self) -> list[str]:
        """The command prefix that runs a program on this host."""
        return ["ip", "netns", "exec", self.netns]

    def received_bytes(self) -> int:
        """Bytes this host has received on the link so far (every peer, every protocol)."""
        shown = json.loads(
            _ip("-n", self.netns, "-j", "-s", "link", "show", "dev", self.link).stdout
        )
        return int(shown[0]["stats64"]["rx"]["bytes"])

    def pids(self) -> list[int]:
        out = _ip("netns", "pids", self.netns, check=False).stdout
        return [int(pid) for pid in out.split()]

    def kill_all(self, timeout: float = 10) -> list[int]:
        """SIGKILL every process on this host (the host is lost); returns their pids."""
        killed: list[int] = []
        deadline = time.monotonic() + timeout
        while pids := self.pids():  # a dying parent may leave a child a moment longer
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed += [pid for pid in pids if pid not in killed]
            if time.monotonic() > deadline:
                raise NetnsError(f"processes outlived SIGKILL on {self.netns}: {pids}")
            time.sleep(0.05)
        return killed


@dataclass
class Network:
    """A private /24 link with hosts on it; :meth:`close` undoes everything."""

    subnet: ipaddress.IPv4Network
    pid: int
    serial: int  # this process's n-th network
    hosts: dict[str, Host] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    root_link: str | None = None

    def _namespace(self, role: str) -> str:
        return f"pawdex-{self.pid}-{self.serial}-{role}"

    def _link(self, end: str) -> str:
        return f"px{self.pid}{self.serial}{end}"  # at most 15 characters

    @property
    def switch(self) -> str:
        return self._namespace("link")

    @property
    def root_address(self) -> str:
        return str(self.subnet.network_address + 1)

    def _address(self, index: int) -> str:
        return str(self.subnet.network_address + 10 + index)

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _plug(self, netns: str | None, inside: str, port: str) -> None:
        """A veth pair: ``inside`` in ``netns`` (None: the root namespace), ``port`` on the
        bridge."""
        _ip("link", "add", inside, "type", "veth", "peer", "name", port)
        _ip("link", "set", port, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        if netns is not None:
            _ip("link", "set", inside, "netns", netns)

    def open(self, roles: Sequence[str]) -> None:
        self._add_namespace(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        self.root_link = self._link("r")
        self._plug(None, self.root_link, "root")
        _ip("addr", "add", f"{self.root_address}/{self.subnet.prefixlen}", "dev", self.root_link)
        _ip("link", "set", self.root_link, "up")
        for index, role in enumerate(roles):
            self.add_host(role, index)

    def add_host(self, role: str, index: int) -> Host:
        link = self._link(f"h{index}")
        host = Host(role, self._namespace(role), self._address(index), link)
        self._add_namespace(host.netns)
        self._plug(host.netns, link, f"h{index}")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/{self.subnet.prefixlen}",
            "dev", link)  # fmt: skip
        _ip("-n", host.netns, "link", "set", link, "up")
        self.hosts[role] = host
        return host

    def __getitem__(self, role: str) -> Host:
        return self.hosts[role]

    def close(self) -> None:
        """Kill every process on every host, delete every namespace (their veths and the
        bridge go with them) and the root namespace's end of the link."""
        errors = []
        for host in self.hosts.values():
            try:
                host.kill_all()
            except NetnsError as exc:
                errors.append(str(exc))
        for name in reversed(self.namespaces):
            done = _ip("netns", "del", name, check=False)
            if done.returncode != 0:
                errors.append(done.stderr.strip())
        if self.root_link is not None:  # gone with its peer in the switch; make sure
            _ip("link", "del", self.root_link, check=False)
        if errors:
            raise NetnsError("; ".join(errors))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def delete_stale() -> list[str]:
    """Delete the namespaces of networks whose process is gone (killed before its cleanup)."""
    listed = _ip("-j", "netns", "list", check=False).stdout.strip()
    names = [entry["name"] for entry in json.loads(listed)] if listed else []
    stale = []
    for name in names:
        match = _STALE.match(name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            for pid in _ip("netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", name, check=False)
            stale.append(name)
    return stale


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix the root namespace routes or holds an address in."""
    used = []
    routes = json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(dst, strict=False))
    for link in json.loads(_ip("-j", "-4", "addr").stdout or "[]"):
        for addr in link.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    return used


def _free_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    for subnet in SUPERNET.subnets(new_prefix=24):
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise NetnsError(f"no free /24 in {SUPERNET}")


@contextmanager
def network(roles: Sequence[str]) -> Iterator[Network]:
    """A link with one host per role (addresses ``.10``, ``.11``… in role order), the root
    namespace at ``.1``; torn down on exit, whatever happened."""
    _LOCK.parent.mkdir(parents=True, exist_ok=True)
    net = None
    try:
        with _LOCK.open("w") as lock:  # two runs at once never pick the same subnet
            fcntl.flock(lock, fcntl.LOCK_EX)
            delete_stale()
            net = Network(_free_subnet(), os.getpid(), next(_counter))
            net.open(roles)
        yield net
    finally:
        if net is not None:
            net.close()
