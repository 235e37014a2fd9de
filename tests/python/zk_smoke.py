"""Writes one znode with kazoo (a ZooKeeper client written by others) for the harness smoke test.

Usage: zk_smoke.py HOST:PORT PATH DATA
"""
import sys

from kazoo.client import KazooClient


def main() -> int:
    hosts, path, data = sys.argv[1:4]
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(timeout=10)
    try:
        client.create(path, data.encode(), makepath=True)
    finally:
        client.stop()
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
