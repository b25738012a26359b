#!/usr/bin/env python3
"""test_cpu_model.py - CPU models as the guest sees them: the test guest
reports CPUID (tg.cpuid=1) in ring 0 and ring 3, and the bits must be the
host's (host-model) or the host's masked to the model's feature list; a
model the host lacks is refused at start, and a migration to a destination
that does not offer the model fails before the source stops the guest.
docs/cpu-models.md describes the rules and the PVM exception checked here."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import (GUEST, VMM, Tap, Vmm, check, check_no_errors,  # noqa: E402
                     free_port, migrate_wait, run)

tap = Tap()
LEAF_NAMES = {(1, 0): "1", (7, 0): "7.0", (0xd, 1): "0xd.1", (0x80000001, 0): "0x80000001"}
REGS = ("eax", "ebx", "ecx", "edx")


def vmm_json(*args, env=None):
    r = run([VMM] + list(args))
    check(r.returncode == 0, f"tern-vmm {args}: {r.returncode} {r.stderr}")
    return json.loads(r.stdout)


def guest_cpuid(model, ring="3"):
    """Boot the guest with `model` and return {leaf name: {reg: value}}."""
    with Vmm(["--kernel", GUEST, "--memory", "64M", "--cpu-model", model,
              "--cmdline", "tg.cpuid=1 tg.duration=1 tg.rate=0 tg.sweep_ms=0"],
             api=False) as vm:
        vm.wait_for(r"^TG CPUID leaf=0x80000001 .* ring=3", timeout=60)
        out = vm.output()
    leaves = {}
    for m in re.finditer(r"^TG CPUID leaf=(\S+) eax=(\w+) ebx=(\w+) ecx=(\w+) edx=(\w+) ring=(\d)",
                         out, re.M):
        if m.group(6) == ring:
            leaves[m.group(1)] = dict(zip(REGS, (int(x, 16) for x in m.group(2, 3, 4, 5))))
    check(len(leaves) == 4, f"{model}: TG CPUID lines: {out[:800]!r}")
    return leaves


def compare(model, leaves, expect, table, only):
    """Every table feature in the leaves `only` must be set iff in `expect`."""
    bad, checked = [], 0
    for f in table["features"]:
        name = LEAF_NAMES.get((f["leaf"], f["subleaf"]))
        if name not in only:
            continue
        seen = bool((leaves[name][f["reg"]] >> f["bit"]) & 1)
        checked += 1
        if seen != (f["name"] in expect):
            bad.append(f"{f['name']} ({name} {f['reg']} bit {f['bit']}): "
                       f"guest {'has' if seen else 'lacks'} it")
    check(not bad, f"{model}: guest CPUID differs from the expected: {bad}")
    return checked


def setup():
    facts = vmm_json("--print-host-facts")
    table = vmm_json("--print-cpu-models")
    return facts, table, {m["name"]: set(m["features"]) for m in table["models"]}


@tap.case()
def host_facts_and_labels():
    facts, table, models = setup()
    for key in ("cpu", "host_model", "cpu_models", "memory", "cpus", "numa", "kernel",
                "kvm", "tern_version", "labels"):
        check(key in facts, f"facts lack {key}: {sorted(facts)}")
    labels = facts["labels"]
    check(labels.get(f"host-model-cpu.node.tern.io/{facts['host_model']}") == "true",
          f"host-model label: {labels}")
    for m in facts["cpu_models"]:
        check(labels.get(f"cpu-model.node.tern.io/{m}") == "true", f"label for {m}")
        check(labels.get(f"cpu-model-migration.node.tern.io/{m}") == "true", f"migration label {m}")
    for flag in facts["cpu"]["flags"]:
        check(labels.get(f"cpu-feature.node.tern.io/{flag}") == "true", f"feature label {flag}")
    # an admin restriction shows in the facts (env and option alike)
    r = run([VMM, "--print-host-facts", "--cpu-models-allowed", "host-model"])
    check(r.returncode == 0 and json.loads(r.stdout)["cpu_models"] == [], f"restricted: {r.stdout[:300]}")
    print(f"# host model {facts['host_model']}, models {facts['cpu_models']}, "
          f"pvm={facts['kvm']['pvm']}", flush=True)


@tap.case()
def guest_sees_masked_cpuid():
    facts, table, models = setup()
    named = [m for m in facts["cpu_models"]]
    check(named, f"this host supports no named model: {facts['cpu_models_unsupported']}")
    host_flags = set(facts["cpu"]["flags"])
    # PVM replaces leaves 1 and 7 (and 0xd.1) with the hardware's bits whatever
    # KVM_SET_CPUID2 says (docs/cpu-models.md): there only 0x80000001 is ours.
    only = {"0x80000001"} if facts["kvm"]["pvm"] else set(LEAF_NAMES.values())
    if facts["kvm"]["pvm"]:
        print("# PVM host: checking leaf 0x80000001 only (KVM overrides leaves 1, 7, 0xd.1)")
    for ring in ("0", "3"):
        hm = guest_cpuid("host-model", ring)
        n = compare("host-model", hm, host_flags, table, only)
        print(f"# host-model ring {ring}: {n} feature bits as the host offers them", flush=True)
    # the largest model whose mask hides something the host offers, in `only`
    in_only = {f["name"] for f in table["features"]
               if LEAF_NAMES.get((f["leaf"], f["subleaf"])) in only}
    cands = [m for m in named if (host_flags - models[m]) & in_only]
    check(cands, f"no supported model hides a host feature in {only}: nothing to show")
    model = max(cands, key=lambda m: len(models[m]))
    hidden = sorted((host_flags - models[model]) & in_only)
    for ring in ("0", "3"):
        g = guest_cpuid(model, ring)
        compare(model, g, host_flags & models[model], table, only)
    print(f"# {model}: the guest no longer sees {hidden} (ring 0 and ring 3)", flush=True)
    if "x86-64-v2" in named and not facts["kvm"]["pvm"]:
        g = guest_cpuid("x86-64-v2")
        check(not (g["7.0"]["ebx"] >> 5) & 1, f"x86-64-v2 guest sees AVX2: {g['7.0']}")
        if "avx2" in host_flags:
            check((guest_cpuid("host-model")["7.0"]["ebx"] >> 5) & 1, "host-model lacks AVX2")
    else:
        print("# x86-64-v2 AVX2 check not run: x86-64-v2 unsupported here or PVM host")


@tap.case()
def model_the_host_lacks_is_refused():
    facts, table, models = setup()
    lacking = [(m, why) for m, why in facts["cpu_models_unsupported"].items()
               if why.startswith("needs")]
    if not lacking:
        print("# this host supports every model: nothing to refuse")
        return
    m, why = lacking[-1]
    r = run([VMM, "--kernel", GUEST, "--cpu-model", m, "--serial", "none"])
    check(r.returncode == 1, f"{m}: exit {r.returncode}")
    check(f"cpu model '{m}' {why}" in r.stderr, f"{m}: {r.stderr!r}")
    r = run([VMM, "--kernel", GUEST, "--cpu-model", "host-model", "--serial", "none",
             "--cpu-models-allowed", "x86-64-v1"])
    check(r.returncode == 1 and "'host-model' is not allowed" in r.stderr, f"{r.stderr!r}")


def start_source(model):
    vm = Vmm(["--kernel", GUEST, "--memory", "128M", "--cpu-model", model,
              "--cmdline", "tg.wss=8M tg.rate=50 tg.report_ms=200"])
    vm.wait_for(r"^TG STAT", timeout=60)
    return vm


@tap.case()
def migration_refused_when_destination_lacks_model():
    facts, table, models = setup()
    model = facts["cpu_models"][0]
    src = start_source(model)
    try:
        port = free_port()
        # the destination offers host-model only: an admin's restriction
        dst = Vmm(["--incoming", f"tcp:127.0.0.1:{port}", "--cpu-models-allowed", "host-model"])
        try:
            dst.wait_api_socket()
            r = migrate_wait(src, port)
            check(r.returncode == 1, f"migrate exit {r.returncode}: {r.stdout[-400:]}")
            st, m = src.call("GET", "/vm/migration")
            check(m["state"] == "failed", f"status {m}")
            check(f"cpu model '{model}' is not allowed" in m.get("error", ""), f"error {m}")
            check(m.get("transferred", 0) < 1 << 20, f"RAM was sent before the refusal: {m}")
            dst.wait_exit(30)
            check(f"cpu model '{model}' is not allowed" in dst.stderr(), f"dst: {dst.stderr()!r}")
        finally:
            dst.kill()
        n = len(src.output())
        src.wait_for(r"^TG STAT ", timeout=20, start=n)
        st, info = src.call("GET", "/vm")
        check(info["state"] == "running", f"source VM {info}")
        check_no_errors(src.output(), "refused")
        # a destination that offers the model takes it, masked the same way
        # (the vCPU state load compares CPUID with the source's)
        port = free_port()
        dst = Vmm(["--incoming", f"tcp:127.0.0.1:{port}", "--cpu-models-allowed", model])
        try:
            dst.wait_api_socket()
            r = migrate_wait(src, port)
            check(r.returncode == 0, f"migrate: {r.stdout[-400:]} {r.stderr}")
            dst.wait_for(r"^TG STAT", timeout=30)
            if facts["kvm"]["pvm"]:  # the masking warning names the model it came with
                check(f"of model {model}:" in dst.stderr(), f"dst log: {dst.stderr()[-400:]!r}")
            check_no_errors(dst.output(), "migrated")
        finally:
            dst.kill()
    finally:
        src.kill()


if __name__ == "__main__":
    sys.exit(tap.run())
