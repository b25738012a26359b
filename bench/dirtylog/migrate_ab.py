#!/usr/bin/env python3
"""migrate_ab.py - the dirty-tracking backends inside a real migration.

Runs bench/migrate.py's tern migration (1 vCPU, loopback TCP, downtime
limit 300 ms) of tern-guest dirtying as fast as it can, alternately with
TERN_DIRTY_LOG=bitmap and =ring (inherited by both tern-vmm processes),
and prints migrate.py's table for each: total time, downtime, guest
downtime, wire MiB, and the guest's write rate during the migration.

  bench/dirtylog/migrate_ab.py [--repeat N] [--build DIR] [--timeout S]
                               [--scenario NAME ...] (default dirty-max)

Extra scenarios: dirty-max (1 GiB guest, 256 MiB rewritten as fast as it
can) and dirty-max-1g (4 GiB guest, 1 GiB rewritten as fast as it can).
tern-vmm runs with TERN_LOG=info, so src.err in the console-log folder
has the engine's per-pass lines and, for the ring, its harvest counts.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MIGRATE = os.path.join(HERE, "..", "migrate.py")

# bench/migrate.py's scenarios plus the one this measurement is about
PRELUDE = ("import sys, runpy; sys.path.insert(0, %r); import migrate; "
           "migrate.EXTRA.append(('dirty-max', '1G', "
           "'tg.fill=0 tg.wss=256M tg.rate=max', 0)); "
           "migrate.EXTRA.append(('dirty-max-1g', '4G', "
           "'tg.fill=0 tg.wss=1G tg.rate=max', 0)); "
           "sys.argv = ['migrate.py'] + sys.argv[1:]; migrate.main()")


def main():
    args = sys.argv[1:]
    if "--scenario" not in args:
        args += ["--scenario", "dirty-max"]
    repeat = 3
    if "--repeat" in args:
        i = args.index("--repeat")
        repeat = int(args[i + 1])
        del args[i:i + 2]
    for rep in range(repeat):
        for backend in ("bitmap", "ring"):
            env = dict(os.environ, TERN_DIRTY_LOG=backend, TERN_LOG="info")
            print(f"== TERN_DIRTY_LOG={backend} (run {rep + 1}/{repeat})", flush=True)
            subprocess.run([sys.executable, "-c", PRELUDE % os.path.dirname(MIGRATE),
                            "--tools", "tern", "--repeat", "1"] + args,
                           env=env, check=False)


if __name__ == "__main__":
    main()
