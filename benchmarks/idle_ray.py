"""CPU that N idle Ray actors cost on this machine (what N concurrent slots pay before any job runs).

    python benchmarks/idle_ray.py N
"""
import logging
import os
import sys
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
import ray

n = int(sys.argv[1])
ray.init(address="local", num_cpus=n, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
@ray.remote(num_cpus=1)
class Idle:
    def ping(self): return os.getpid()
actors = [Idle.remote() for _ in range(n)]
pids = ray.get([a.ping.remote() for a in actors])
time.sleep(5)
def ticks():
    tot = 0
    for p in os.listdir("/proc"):
        if not p.isdigit(): continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read()
            if b"ray" not in cmd: continue
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            tot += int(f[11]) + int(f[12])
        except OSError: pass
    return tot
hz = os.sysconf("SC_CLK_TCK")
a = ticks(); t = time.time(); time.sleep(10); b = ticks(); dt = time.time() - t
print(f"{n} idle actors: Ray's processes use {(b - a) / hz / dt:.2f} cores while idle")
ray.shutdown()
