#!/usr/bin/env python3
"""Write the seed corpus of fuzz_xbzrle_decode into corpus_xbzrle/.

Byte 0: bit 0 = round-trip mode, bits 1..3 = page size index
(1, 7, 8, 64, 100, 512, 4096, 4097). Decode seeds are valid deltas (and
a few near-misses); round-trip seeds are edit lists. Run from this folder.
"""
import os

SIZES = [1, 7, 8, 64, 100, 512, 4096, 4097]


def uleb(v):
    out = bytearray()
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def delta(pairs):
    """pairs: [(zrun, literal bytes)]; span = bytes they cover."""
    span = sum(z + len(lit) for z, lit in pairs)
    return uleb(span) + b"".join(uleb(z) + uleb(len(lit)) + lit
                                 for z, lit in pairs)


def dec(size_idx, d):
    return bytes([size_idx << 1]) + d


def rt(size_idx, max_sel, edits):
    body = b"".join(bytes([o & 0xff, o >> 8, n, v]) for o, n, v in edits)
    return bytes([size_idx << 1 | 1, max_sel]) + body


SEEDS = {
    "dec-first-byte-4k": dec(6, delta([(0, b"\x5a")])),
    "dec-one-byte-4k": dec(6, delta([(1000, b"\xab")])),
    "dec-last-byte-4k": dec(6, delta([(4095, b"\x77")])),
    "dec-two-pairs-64": dec(3, delta([(3, b"ab"), (5, b"cde")])),
    "dec-whole-7": dec(1, delta([(0, b"1234567")])),
    "dec-whole-1": dec(0, delta([(0, b"z")])),
    "dec-many-pairs-512": dec(5, delta([(3, b"x")] * 100)),
    "dec-long-literal-4097": dec(7, delta([(1, bytes(range(256)) * 16)])),
    "dec-bad-trailing": dec(3, delta([(3, b"ab")]) + b"\x00"),
    "dec-bad-overlong": dec(3, b"\x81\x00\x00\x01a"),
    "rt-one-edit-4k": rt(6, 0xe0, [(100, 1, 0xff)]),
    "rt-many-edits-4k": rt(6, 0x70, [(i * 37, 3, i) for i in range(60)]),
    "rt-alternating-64": rt(3, 0xff, [(i, 1, 0xee) for i in range(0, 64, 2)]),
    "rt-tail-4097": rt(7, 0xff, [(4090, 7, 1)]),
    "rt-equal-100": rt(4, 0x10, []),
}

os.makedirs("corpus_xbzrle", exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join("corpus_xbzrle", name), "wb") as f:
        f.write(data)
