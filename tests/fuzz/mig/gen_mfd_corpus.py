#!/usr/bin/env python3
"""gen_mfd_corpus.py - seeds for fuzz_mfd_channel (one channel's bytes,
after a method byte) and MULTIFD records for fuzz_mig_stream.

  tests/fuzz/mig/gen_mfd_corpus.py tests/fuzz/mig
"""
import os
import struct
import subprocess
import sys

PS = 4096
HELLO, SYNC_, PAGES, CHANNELS = 0x0402, 0x0401, 0x0403, 0x0400


def rec(t, payload):
    return struct.pack("<HHIQ", t, 0, 0, len(payload)) + payload


def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def pages(offs, method, data):
    return rec(PAGES, struct.pack("<IIII", 1, len(offs), method, len(data)) +
               b"".join(struct.pack("<Q", o) for o in offs) + data)


def main(out):
    chan = os.path.join(out, "corpus_mfd_channel")
    os.makedirs(chan, exist_ok=True)
    hello = rec(HELLO, bytes(range(16)) + struct.pack("<II", 0, 2))
    page = bytes((i // 64) & 0xff for i in range(PS))
    raw = hello + pages([0, 3 * PS], 0, page * 2) + rec(SYNC_, struct.pack("<Q", 1))
    open(os.path.join(chan, "raw"), "wb").write(b"\0" + raw)
    z = subprocess.run(["zstd", "-q", "-c", "--no-check"], input=page * 2,
                       capture_output=True, check=True).stdout
    zs = hello + pages([PS, 2 * PS], 1, z) + rec(SYNC_, struct.pack("<Q", 1))
    open(os.path.join(chan, "zstd"), "wb").write(b"\1" + zs)
    # an lz4 block by hand: one sequence, all literals (valid raw block)
    lit = page
    block = bytes([0xf0]) + bytes([0xff] * ((len(lit) - 15) // 255)) + \
        bytes([(len(lit) - 15) % 255]) + lit
    l4 = hello + pages([5 * PS], 2, block) + rec(SYNC_, struct.pack("<Q", 1))
    open(os.path.join(chan, "lz4"), "wb").write(b"\2" + l4)
    # main stream: header with MULTIFD, RAM_BLOCKS, CHANNELS, SYNC, EOF
    h = b"TERNMIG\n" + struct.pack("<HHIIHHI", 1, 0, 1 << 3, PS, 1, 0, 0)
    h += struct.pack("<I", crc32c(h))
    blocks = struct.pack("<IIIQIH", 1, 1, PS, 16 * PS, 0, 4) + b"ram0"
    s = h + rec(2, blocks) + rec(CHANNELS, struct.pack("<IIII", 2, 2, 0, 0) + bytes(16)) + \
        rec(SYNC_, struct.pack("<Q", 1)) + rec(13, b"")
    open(os.path.join(out, "corpus_mig_stream", "multifd"), "wb").write(s)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
