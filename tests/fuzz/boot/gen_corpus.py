#!/usr/bin/env python3
"""gen_corpus.py - write the small synthesized bzImage seeds for fuzz_bzimage.

Each seed is a boot sector + 1 setup sector + a 1 KiB "kernel": small enough
to commit, valid enough that boot_load() is reached. The last byte of each
file is what the fuzzer uses as nr_cpus. Run from this folder:
    python3 gen_corpus.py
"""
import os
import struct

SETUP_SECTS = 1
SETUP_LEN = (SETUP_SECTS + 1) * 512
KERNEL_LEN = 1024


def image(version=0x20F, reloc=1, xlf=0x3, pref=0x200000, init_size=0x100000,
          handover=0, kinfo=0x40, cpus=2, hdr_jump=0x6A, setup_sects=SETUP_SECTS):
    buf = bytearray(SETUP_LEN + KERNEL_LEN)
    buf[0x1F1] = setup_sects
    struct.pack_into("<I", buf, 0x1F4, KERNEL_LEN // 16)
    struct.pack_into("<H", buf, 0x1FA, 0xFFFF)
    struct.pack_into("<H", buf, 0x1FE, 0xAA55)
    buf[0x200] = 0xEB
    buf[0x201] = hdr_jump
    buf[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", buf, 0x206, version)
    buf[0x211] = 0x01                      # LOADED_HIGH
    struct.pack_into("<I", buf, 0x22C, 0x7FFFFFFF)
    struct.pack_into("<I", buf, 0x230, 0x200000)
    buf[0x234] = reloc
    buf[0x235] = 21
    struct.pack_into("<H", buf, 0x236, xlf)
    struct.pack_into("<I", buf, 0x238, 2047)
    struct.pack_into("<II", buf, 0x248, 0x100, 0x200)
    struct.pack_into("<Q", buf, 0x258, pref)
    struct.pack_into("<I", buf, 0x260, init_size)
    struct.pack_into("<I", buf, 0x264, handover)
    struct.pack_into("<I", buf, 0x268, kinfo)
    k = SETUP_LEN
    for i in range(KERNEL_LEN):
        buf[k + i] = (i * 7 + 3) & 0xFF
    if kinfo:
        buf[k + kinfo:k + kinfo + 4] = b"LToP"
        struct.pack_into("<II", buf, k + kinfo + 4, 16, 16)
    buf[-1] = cpus
    return bytes(buf)


SEEDS = {
    "v215_reloc": image(),
    "v215_8cpu": image(cpus=8),
    "v212_noreloc": image(version=0x20C, reloc=0, kinfo=0, hdr_jump=0x66, pref=0x1000000),
    "v206_old": image(version=0x206, xlf=0, kinfo=0, hdr_jump=0x3A),
    "handover64": image(xlf=0x0B, handover=0x80),
    "pref_low": image(pref=0x1000),
    "big_init": image(init_size=0x4000000),
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus_bzimage")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
