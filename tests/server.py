"""A throwaway Milvus server for the tests, kept off the network.

The server is Embedded Milvus 2.3.5 (``pip install milvus==2.3.5``: the Milvus
standalone binary with its own etcd). Its gRPC ports (19530, 9091, 53100, ...) listen on
ALL interfaces, and Milvus 2.3 has no setting to bind them to loopback (``proxy.ip``
and friends only change the address it advertises; measured: still ``*:19530``). So
the server never runs in the test process's network. A helper process (this file,
``--child``):

1. opens a listening socket on ``127.0.0.1:<free port>`` in the caller's namespace;
2. moves itself into a new, private network namespace that holds only ``lo``
   (``unshare(CLONE_NEWNET)``: root, or an unprivileged user namespace) - the socket
   opened in step 1 stays where it was made;
3. starts Milvus there (every port it opens is unreachable from outside) and forwards
   each connection from the loopback socket to ``127.0.0.1:19530`` inside.

The forwarding runs in the helper, not in the test process, so it never waits for
the tests' GIL. Every wait is bounded. Where no namespace can be made,
:class:`ServerUnavailable` is raised and the tests skip (or fail, with
``MATRYOSHKA_REQUIRE_SERVER=1``).

Restarts (:meth:`MilvusTestServer.kill`, :meth:`~MilvusTestServer.restart`): the helper
SIGKILLs the Milvus binary and closes the loopback socket (connections are refused, as
with a dead server), then starts Milvus again on the same data and reopens the same
port. What Milvus 2.3.5 needs to come back after a SIGKILL (measured, see
``benchmarks/server_restart.py``):

* the same ports as before. Its components register their addresses in the embedded
  etcd; MilvusServer picks each port afresh, skipping any still in TIME_WAIT, so a
  restarted server moved (rootcoord 53100 -> 53101, proxy 19530 -> 19532) while its
  components kept dialing the addresses in the dead instance's sessions. The helper
  pins every port to the template's default (free in the private namespace) and binds
  them with SO_REUSEADDR, as Milvus itself does;
* a short session TTL. A new coordinator cannot register while the dead one's session
  lease lives (``CompareAndSwap error for compare is false for key: rootcoord``), and
  etcd renews every lease for a full TTL when it starts again. Measured after a SIGKILL
  (time until a client of the old port counts the rows): as shipped, healthy after 60 s
  on moved ports, never serving the old port within 120 s; fixed ports, 30 s TTL: 37 s;
  moved ports, 5 s TTL: never at the old port; fixed ports and ``common.session.ttl: 5``
  (these): 10-12 s;
* ``common.gracefulStopTimeout`` (default 1,800 s, why a SIGTERM did not stop the server
  within 60 s): 5 s here (SIGTERM then took 5-24 s).

By hand: ``python tests/server.py`` prints the uri and serves until Ctrl-C.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#: The pip line that provides the server.
INSTALL_HINT = "pip install milvus==2.3.5"
#: Default bound on the server's start, in seconds (3-8 s here).
START_TIMEOUT = float(os.environ.get("MATRYOSHKA_SERVER_START_TIMEOUT", "120"))
#: Seconds a Milvus component's etcd session outlives it (Milvus' default: 30).
SESSION_TTL = 5
#: Seconds Milvus waits for in-flight work on SIGTERM (Milvus' default: 1,800).
GRACEFUL_STOP_TIMEOUT = 5

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_PR_SET_PDEATHSIG = 1


class ServerUnavailable(RuntimeError):
    """The server cannot run here: package missing or no private network namespace."""


# ---------------------------------------------------------------------------- caller side


class MilvusTestServer:
    """A Milvus 2.3 server in a private network namespace, reachable at :attr:`uri`."""

    def __init__(
        self, base_dir: str | os.PathLike[str] | None = None, session_ttl: int = SESSION_TTL
    ) -> None:
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="milvus-test-"))
        self.session_ttl = session_ttl
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdout = b""
        self.uri = ""
        self.port = 0
        self.helper_pid = 0
        self.milvus_pid = 0
        self.start_seconds = 0.0
        self.restart_seconds = 0.0

    def start(self, timeout: float = START_TIMEOUT) -> MilvusTestServer:
        """Start the server; raise within about ``timeout`` seconds if it does not come up."""
        try:
            import milvus  # noqa: F401
        except ImportError as exc:
            raise ServerUnavailable(
                f"the PyPI package 'milvus' (Embedded Milvus 2.3) is not installed: {INSTALL_HINT}"
            ) from exc
        began = time.monotonic()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with open(self.base_dir / "helper.log", "wb") as log:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--child",
                    str(self.base_dir),
                    str(timeout),
                    str(self.session_ttl),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,  # its own process group: stop() ends it all
            )
        self.helper_pid = self._proc.pid
        try:
            line = self._read_line(timeout + 10)
            if line.startswith("NONETNS "):
                raise ServerUnavailable(
                    f"cannot make a private network namespace here ({line[8:]}); run the "
                    "tests as root or allow unprivileged user namespaces, or set "
                    "MATRYOSHKA_TEST_MILVUS_URI to a running server"
                )
            if not line.startswith("READY "):
                raise RuntimeError(
                    f"Milvus test server did not start: {line or 'no answer'}; see "
                    f"{self.base_dir / 'helper.log'} and {self.base_dir / 'milvus' / 'logs'}"
                )
            self.port, self.milvus_pid = map(int, line.split()[1:3])
            self.uri = f"http://127.0.0.1:{self.port}"
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _command(self, command: str) -> None:
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("the Milvus test server is not running")
        self._proc.stdin.write(command.encode() + b"\n")
        self._proc.stdin.flush()

    def kill(self, timeout: float = 30.0) -> None:
        """SIGKILL the Milvus binary; its port refuses connections until :meth:`restart`."""
        self._command("kill")
        line = self._read_line(timeout)
        if line != "KILLED":
            raise RuntimeError(f"Milvus test server was not killed: {line or 'no answer'}")

    def restart(self, timeout: float = START_TIMEOUT) -> float:
        """Start Milvus again on the same data and port; returns the seconds it took."""
        began = time.monotonic()
        self._command("start")
        line = self._read_line(timeout + 10)
        if not line.startswith("READY "):
            raise RuntimeError(
                f"Milvus test server did not restart: {line or 'no answer'}; see "
                f"{self.base_dir / 'milvus' / 'logs'}"
            )
        port, self.milvus_pid = map(int, line.split()[1:3])
        if port != self.port:
            raise RuntimeError(f"Milvus test server came back on port {port}, not {self.port}")
        self.restart_seconds = time.monotonic() - began
        return self.restart_seconds

    def _read_line(self, timeout: float) -> str:
        """Next line of the helper's stdout; '' at EOF; a message after ``timeout`` s."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._stdout:
                left = deadline - time.monotonic()
                if left <= 0:
                    return f"no answer within {timeout:.0f} s"
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                self._stdout += chunk
        line, _, self._stdout = self._stdout.partition(b"\n")
        return line.decode(errors="replace").strip()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGKILL after ``timeout`` s) and remove its files."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(b"stop\n")
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            try:  # the helper's own group: the helper and the milvus binary, nothing else
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> MilvusTestServer:  # noqa: PYI034
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- helper side


def _enter_private_netns() -> None:
    """Move this (single-threaded) process into a new network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) == 0:
        return
    first = ctypes.get_errno()
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(
            err,
            f"unshare(CLONE_NEWNET): {os.strerror(first)}; with a user namespace: "
            f"{os.strerror(err)}",
        )
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _bin_cache() -> Path | None:
    """Decompressed milvus binaries shared between runs (saves ~5 s per start)."""
    import milvus

    root = os.environ.get("MATRYOSHKA_MILVUS_BIN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "langchain-matryoshka",
    )
    top = Path(root) / f"milvus-{milvus.__version__}"
    cache = top / "bin"
    try:
        if not cache.is_dir():
            top.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="staging-", dir=top))
            try:
                milvus._initialize_data_files(str(staging))  # writes staging/bin
                os.rename(staging / "bin", cache)  # atomic: a complete cache or none
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):  # lost a race: fine
                    raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return cache
    except OSError:
        return None


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _listen(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


def _listen_in(netns_fd: int, port: int) -> socket.socket:
    """A loopback listener on ``port`` in the network namespace ``netns_fd`` (the
    caller's): this thread enters it, makes the socket and comes back."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if libc.setns(netns_fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns to the caller's network namespace")
        try:
            return _listen(port)
        finally:
            if libc.setns(own, _CLONE_NEWNET) != 0:  # never serve Milvus outside
                os._exit(5)
    finally:
        os.close(own)


#: How often the query coordinator looks for work (ms), 10x the defaults' pace: loading a
#: new collection, which each server test does, took 2.2 to 2.9 s with the defaults and
#: 1.2 to 1.9 s with these (the rest is the load observer's fixed one-second tick).
COORDINATION = {
    "queryCoord.checkInterval": 100,
    "queryCoord.checkChannelInterval": 100,
    "queryCoord.checkSegmentInterval": 100,
    "queryCoord.distPullInterval": 100,
}


def _milvus_server(milvus_dir: str, session_ttl: int) -> object:
    """A MilvusServer on the template's fixed ports, restartable after a SIGKILL."""
    from milvus import MilvusServer, MilvusServerConfig

    class _Config(MilvusServerConfig):
        def update_extra_configs(self, content: str) -> str:
            """Also add the ``COORDINATION`` keys the template lacks (``milvus`` sets only
            the lines it has)."""
            content = super().update_extra_configs(content)
            for key, value in COORDINATION.items():
                section, name = key.split(".", 1)
                if f"\n  {name}: {value}" not in content:
                    if f"\n{section}:\n" not in content:
                        raise RuntimeError(f"the Milvus config template has no {section!r}")
                    content = content.replace(
                        f"\n{section}:\n", f"\n{section}:\n  {name}: {value}\n", 1
                    )
            return content

        def try_bind_port(self, port: int) -> socket.socket | None:
            try:  # SO_REUSEADDR, as Milvus binds: a dead instance's TIME_WAIT is no conflict
                return _listen(port)
            except OSError:
                return None

    config = _Config()
    # Every port named: one in use is an error, never a move to the next free one.
    config.update(**{k: v[1] for k, v in config.configurable_items.items() if k.endswith("_port")})
    server = MilvusServer(config, wait_for_started=False)
    server.set_base_dir(milvus_dir)
    server.config.set("common.session.ttl", session_ttl)
    server.config.set("common.gracefulStopTimeout", GRACEFUL_STOP_TIMEOUT)
    for key, value in COORDINATION.items():
        server.config.set(key, value)  # the template's keys; update_extra_configs adds the rest
    return server


class _Relay:
    """Forwards connections from the caller's loopback port to Milvus' proxy."""

    def __init__(self, listener: socket.socket, port: int) -> None:
        self.listener = listener
        threading.Thread(target=_accept_loop, args=(listener, port), daemon=True).start()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept loop
        except OSError:
            pass
        self.listener.close()


def _child(base_dir: str, timeout: float, session_ttl: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # the test process died: stop too
    # Made before leaving the caller's namespace, so it stays reachable there.
    listener = _listen()
    port = listener.getsockname()[1]
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        _enter_private_netns()
        _loopback_up()
    except OSError as exc:
        _say(f"NONETNS {exc}")
        return 3
    names = [name for _, name in socket.if_nameindex()]
    if names != ["lo"]:
        _say(f"ERROR the private namespace has interfaces {names}, expected only lo")
        return 4

    milvus_dir = os.path.join(base_dir, "milvus")
    os.makedirs(milvus_dir, exist_ok=True)
    cache = _bin_cache()
    if cache is not None and not os.path.exists(os.path.join(milvus_dir, "bin")):
        os.symlink(cache, os.path.join(milvus_dir, "bin"))
    server = _milvus_server(milvus_dir, session_ttl)
    relay: _Relay | None = None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        server.start()
        server.wait_started(timeout=timeout * 1000)
        relay = _Relay(listener, server.listen_port)
        _say(f"READY {port} {server.server_proc.pid}")
        with selectors.DefaultSelector() as sel:
            sel.register(sys.stdin, selectors.EVENT_READ)
            while not stop.is_set():
                if server.running and server.server_proc.poll() is not None:
                    break  # Milvus died on its own
                if not sel.select(0.5):
                    continue
                command = sys.stdin.readline()
                if command in ("", "stop\n"):
                    break
                if command == "kill\n" and server.running:
                    relay.close()  # the port refuses connections, as a dead server's would
                    relay = None
                    server.server_proc.kill()
                    server.server_proc.wait()
                    server.stop()
                    _say("KILLED")
                elif command == "start\n" and not server.running:
                    server = _milvus_server(milvus_dir, session_ttl)
                    server.start()
                    server.wait_started(timeout=timeout * 1000)
                    relay = _Relay(_listen_in(home, port), server.listen_port)
                    _say(f"READY {port} {server.server_proc.pid}")
    except Exception as exc:  # noqa: BLE001 - reported to the caller
        _say(f"ERROR {type(exc).__name__}: {exc}")
        return 1
    finally:
        if relay is not None:
            relay.close()
        server.stop()
    return 0


def _accept_loop(listener: socket.socket, port: int) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        done = [0]
        lock = threading.Lock()
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(src, dst, done, lock), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket, done: list[int], lock: threading.Lock) -> None:
    try:
        while True:
            data = src.recv(1 << 18)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    with lock:
        done[0] += 1
        if done[0] == 2:  # both directions ended: close the pair
            src.close()
            dst.close()


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        return _child(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    with MilvusTestServer() as server:
        print(
            f"Milvus 2.3 at {server.uri} (started in {server.start_seconds:.1f} s), data in "
            f"{server.base_dir / 'milvus' / 'data'}; Ctrl-C stops"
        )
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
