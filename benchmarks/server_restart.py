"""What Embedded Milvus 2.3.5 needs to serve again after a SIGKILL: ports and session TTL.

For each setting: start a server on a fresh data dir, write 100 rows, SIGKILL it, start
it again on the same data, and time how long until a new client can load the collection
and count its rows; then time a SIGTERM. Settings:

* ``default``: MilvusServer as shipped (each port picked afresh from its default upward,
  skipping ports in use or in TIME_WAIT; etcd session TTL 30 s; graceful stop 1,800 s);
* ``fixed``: every port pinned to its default (bound with SO_REUSEADDR, as Milvus does);
* ``ttl``: ``common.session.ttl: 5`` and ``common.gracefulStopTimeout: 5``;
* ``fixed+ttl``: both (what tests/server.py does).

Everything runs inside a private network namespace (nothing listens outside it).

Run (2-core x86_64, no GPU, 24 GiB; root, or unprivileged user namespaces):

    python benchmarks/server_restart.py --json results/server_restart.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import server as test_server  # noqa: E402

SETTINGS = ("default", "fixed", "ttl", "fixed+ttl")


def _server(base: str, setting: str):
    from milvus import MilvusServer, MilvusServerConfig

    class _Config(MilvusServerConfig):
        def try_bind_port(self, port: int):
            try:
                return test_server._listen(port)
            except OSError:
                return None

    fixed = "fixed" in setting
    config = _Config() if fixed else MilvusServerConfig()
    if fixed:
        ports = {k: v[1] for k, v in config.configurable_items.items() if k.endswith("_port")}
        config.update(**ports)
    server = MilvusServer(config, wait_for_started=False)
    server.set_base_dir(base)
    if "ttl" in setting:
        server.config.set("common.session.ttl", 5)
        server.config.set("common.gracefulStopTimeout", 5)
    return server


def _ports(server) -> dict[str, int]:
    items = server.config.configurable_items
    return {k: v[1] for k, v in items.items() if k.endswith("_port")}


def _serving(port: int, deadline: float) -> float | None:
    from pymilvus import MilvusClient

    began = time.monotonic()
    while time.monotonic() < deadline:
        try:
            client = MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=3)
            client.load_collection("k", timeout=10)
            rows = client.query("k", filter="", output_fields=["count(*)"], timeout=10)
            client.close()
            if rows[0]["count(*)"] == 100:
                return time.monotonic() - began
        except Exception:  # noqa: BLE001 - not serving yet
            time.sleep(1)
    return None


def measure(setting: str, wait: float) -> dict:
    from pymilvus import MilvusClient

    base = tempfile.mkdtemp(prefix=f"restart-{setting.replace('+', '-')}-")
    cache = test_server._bin_cache()
    if cache is not None:
        os.symlink(cache, os.path.join(base, "bin"))
    first = _server(base, setting)
    began = time.monotonic()
    first.start()
    first.wait_started(timeout=180_000)
    out: dict = {"setting": setting, "start_s": round(time.monotonic() - began, 1)}
    ports_before = _ports(first)
    client = MilvusClient(uri=f"http://127.0.0.1:{first.listen_port}", timeout=10)
    client.create_collection("k", dimension=4, consistency_level="Strong")
    client.insert("k", [{"id": i, "vector": [1.0, 0.0, 0.0, float(i)]} for i in range(100)])
    client.close()
    os.kill(first.server_proc.pid, signal.SIGKILL)
    first.server_proc.wait()
    first.server_proc = None
    first.stop()

    second = _server(base, setting)
    began = time.monotonic()
    second.start()
    try:
        second.wait_started(timeout=wait * 1000)
        out["healthy_after_s"] = round(time.monotonic() - began, 1)
    except (TimeoutError, RuntimeError):
        out["healthy_after_s"] = None
    moved = {k: (v, _ports(second)[k]) for k, v in ports_before.items() if _ports(second)[k] != v}
    out["ports_moved"] = moved
    # a client that knows the old address, as every client of the dead server does
    serving = _serving(ports_before["proxy_port"], began + wait)
    out["serving_after_s"] = None if serving is None else round(time.monotonic() - began, 1)
    began = time.monotonic()
    second.server_proc.send_signal(signal.SIGTERM)
    try:
        second.server_proc.wait(60)
        out["sigterm_stop_s"] = round(time.monotonic() - began, 1)
    except Exception:  # noqa: BLE001 - still running
        out["sigterm_stop_s"] = None
        second.server_proc.kill()
        second.server_proc.wait()
    second.server_proc = None
    second.stop()
    shutil.rmtree(base, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--wait", type=float, default=180, help="seconds to wait for serving")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    test_server._enter_private_netns()
    test_server._loopback_up()
    assert [n for _, n in socket.if_nameindex()] == ["lo"]
    results = []
    for setting in args.settings:
        results.append(measure(setting, args.wait))
        print(json.dumps(results[-1]), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
