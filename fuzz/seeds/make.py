#!/usr/bin/env python3
"""Writes the seed inputs of the non-HTTP fuzz targets (fuzz/README.md).

Run from fuzz/: `python3 seeds/make.py` (needs GNU tar for the tar_open
seeds). Each seed follows its target's input layout, described in the
target's module doc.
"""
import os
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def xenstore_reply():
    def msg(t, rid, payload):
        return struct.pack("<IIII", t, rid, 0, len(payload)) + payload

    # READ=2 WRITE=11 ERROR=16 WATCH_EVENT=15 DIRECTORY=1 GET_PERMS=3
    # TRANSACTION_START=6 GET_DOMAIN_PATH=10
    stream = (msg(2, 1, b"value") + msg(11, 2, b"OK\0") + msg(16, 3, b"ENOENT\0")
              + msg(15, 0, b"/local/domain/1/device\0tok-1\0")
              + msg(1, 4, b"vif\0vbd\0") + msg(3, 5, b"n0\0r1\0b65535\0")
              + msg(6, 6, b"17\0") + msg(10, 7, b"/local/domain/3\0"))

    def seed(log2, start, ops):
        return bytes([log2]) + struct.pack("<I", start) + bytes([len(ops) // 2]) + bytes(ops) + stream

    write("xenstore_reply", "all-types", seed(6, 0, [0, 10, 2, 0, 0, 40, 2, 0]))
    write("xenstore_reply", "wrap-small-ring",
          seed(0, 0xFFFFFFF0, [0, 1, 2, 0, 0, 3, 2, 0, 3, 5, 2, 0, 3, 0]))
    write("xenstore_reply", "big-ring", seed(6, 7, []))


def xenstore_client():
    # (op, a, b, payload): 0 new call (a % 6: read, directory, write, perms,
    # transaction start, watch), 2 poll, 4 take, 5 reply of the right type
    # (a % 4 == 0: canned, else the payload), 7 error reply, 8 other type
    # or unknown id, 9 watch event, 10 oversized header, 11 flush / index.
    def op(o, a=0, b=0, payload=b""):
        return bytes([o, a, b, len(payload)]) + payload

    calls = b"".join(op(0, k) for k in range(6))
    honest = (calls + op(2) + op(4) + b"".join(op(5, 0, k) for k in range(6)) + op(2)
              + op(9, 1, 5) + op(9, 2, 5) + op(2) + op(2))
    mixed = (calls + op(2) + op(4) + op(5, 1, 0, b"raw value") + op(7, 4, 1) + op(7, 0x80, 2, b"EWHAT\0")
             + op(8, 3, 3) + op(8, 0x95, 1, b"x\0") + op(5, 1, 4, b"12\0") + op(2) + op(9, 0x81, 0, b"tok")
             + op(11) + op(2))
    broken = calls + op(2) + op(4) + op(11, 0xFF, 3) + op(2) + op(10, 0, 1, b"x") + op(2)
    write("xenstore_client", "honest", honest)
    write("xenstore_client", "mixed", mixed)
    write("xenstore_client", "broken", broken)


def front_ring_response():
    # ops (op, arg lo, arg hi): 0 push, 2 publish, 3 honest response,
    # 5 arbitrary/duplicate id, 7 publish responses, 8 req_event,
    # 9 take, 10 poll, 11 final check.
    def ops(*o):
        return b"".join(bytes([a, b & 0xFF, b >> 8]) for a, b in o)

    honest = ops((0, 7), (2, 0), (3, 0), (3, 1), (3, 2), (7, 0), (9, 0), (9, 0), (10, 0),
                 (11, 0), (0, 3), (2, 0), (5, 1), (3, 4), (7, 0), (10, 0), (9, 0), (9, 0))
    hostile = ops((0, 2), (2, 0), (7, 0x0102), (9, 0), (7, 0x0103), (10, 0), (7, 0),
                  (5, 0x0200), (5, 3), (7, 0), (9, 0), (9, 0), (8, 4), (0, 1), (2, 0))
    for proto in range(3):
        write("front_ring_response", f"honest-{proto}", bytes([proto]) + struct.pack("<I", 0) + honest)
        write("front_ring_response", f"wrap-{proto}",
              bytes([proto]) + struct.pack("<I", 0xFFFFFFFE) + honest)
        write("front_ring_response", f"hostile-{proto}", bytes([proto]) + struct.pack("<I", 5) + hostile)


def tar_open():
    with tempfile.TemporaryDirectory() as t:
        root = os.path.join(t, "site")
        os.makedirs(os.path.join(root, "a", "b"))
        os.makedirs(os.path.join(root, "empty"))
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("<h1>home</h1>\n")
        with open(os.path.join(root, "a", "b", "c.txt"), "wb") as f:
            f.write(bytes(range(256)) * 3)
        long = "l" * 120
        with open(os.path.join(root, "a", long), "w") as f:
            f.write("long name\n")
        os.symlink("index.html", os.path.join(root, "link"))
        os.link(os.path.join(root, "index.html"), os.path.join(root, "hard"))
        for fmt in ["gnu", "pax", "ustar", "v7"]:
            out = os.path.join(t, fmt + ".tar")
            args = ["tar", "--format=" + fmt, "--sort=name", "--mtime=@1700000000",
                    "--owner=0", "--group=0", "--numeric-owner"]
            if fmt in ("ustar", "v7"):
                args.append("--exclude=site/a/" + long)
            if fmt == "pax":
                # Deterministic: no access/change times, fixed header names.
                args.append("--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime")
            subprocess.run(args + ["-C", t, "-cf", out, "site"], check=True)
            data = open(out, "rb").read().rstrip(b"\0")
            data += b"\0" * ((-len(data)) % 512) + b"\0" * 512
            # [flags, fault]: checksums as written, no fault; and again
            # with a read fault on sector 3.
            write("tar_open", fmt, bytes([0, 0]) + data)
            write("tar_open", fmt + "-fault", bytes([0, 4]) + data)


def netfront_rx():
    # A UDP/IPv4 frame with a blank (wrong) checksum at page offset 0.
    payload = b"hello, netfront"
    udp = struct.pack(">HHHH", 1234, 5678, 8 + len(payload), 0x1234) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    frame = bytes([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]) + ip + udp
    page = frame + bytes(64 - len(frame) % 64)

    def rsp(ctrl, id_, offset, flags, status):
        return bytes([ctrl]) + struct.pack("<HHHh", id_, offset, flags, status)

    more, blank, valid = 4, 2, 1
    n = len(frame)
    single = rsp(0, 0, 0, blank, n) + rsp(0, 1, 0, valid, n)
    chain = (rsp(0, 2, 0, more, 20) + rsp(0, 3, 20, more | blank, 20) + rsp(0, 4, 40, 0, n - 40)
             + rsp(1, 5, 0, more, 10) + rsp(0, 6, 0, 0, 10) + rsp(0, 7, 0, 0, -1) + rsp(2, 8, 0, 0, 60))
    write("netfront_rx", "single", bytes([0, len(page) // 8]) + page + single)
    write("netfront_rx", "chain-sg", bytes([1, len(page) // 8]) + page + chain)


def blkif_response():
    # ops (op, a, b): 0,1 read, 2 write, 3 flush, 4 poll, 6 take,
    # 7 answer (mode a, which b), 9 publish (a), 10 drop a call, 11 disconnect (a == 0).
    def ops(*o):
        return b"".join(bytes(x) for x in o)

    honest = ops((0, 3, 4), (2, 9, 16), (3, 0, 0), (4, 0, 0), (6, 0, 0), (7, 0, 0), (7, 0, 0),
                 (7, 0, 0), (7, 0, 0), (9, 2, 0), (4, 0, 0), (6, 0, 0), (7, 5, 0), (7, 0, 0),
                 (9, 2, 0), (4, 0, 0))
    hostile = ops((0, 1, 8), (0, 2, 8), (4, 0, 0), (6, 0, 0), (7, 7, 1), (7, 11, 0), (9, 2, 0),
                  (4, 0, 0), (10, 0, 0), (9, 0, 0), (4, 0, 0))
    nodes = b"2048\0" + b"512\0" + b"0\0" + b"1\0" + b"0\0" + b"32"
    for cfg in range(3):
        write("blkif_response", f"honest-{cfg}", bytes([cfg, len(nodes)]) + nodes + honest)
        write("blkif_response", f"hostile-{cfg}", bytes([cfg, len(nodes)]) + nodes + hostile)


def cmdline():
    write("cmdline", "static", b"console=hvc0 ip=10.0.0.2/24 gw=10.0.0.1 loglevel=debug port=80")
    write("cmdline", "dhcp", b"ip=dhcp loglevel=3")
    write("cmdline", "host", b"ip=192.168.7.9/32")


if __name__ == "__main__":
    xenstore_reply()
    xenstore_client()
    front_ring_response()
    tar_open()
    netfront_rx()
    blkif_response()
    cmdline()
