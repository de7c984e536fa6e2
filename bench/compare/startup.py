#!/usr/bin/env python3
"""Start-up of short commands, interleaved: every round runs each command once, in a shuffled order, so machine load
falls on all alike. Reports wall time and CPU time (user + system, from os.wait4) as medians and p10-p90.

usage: startup.py ROUNDS 'name=command args' ...   e.g.
  startup.py 40 'cat=cat m.safetensors' 'inspect=/tmp/cli/graft inspect m.safetensors'
"""
import os, random, shlex, statistics, subprocess, sys, time

rounds = int(sys.argv[1])
cmds = dict(a.split('=', 1) for a in sys.argv[2:])
cmds = {k: shlex.split(v) for k, v in cmds.items()}
devnull = open(os.devnull, 'w')
res = {k: [] for k in cmds}
for k in cmds:  # warm the page cache
    subprocess.run(cmds[k], stdout=devnull, check=True)
for _ in range(rounds):
    order = list(cmds)
    random.shuffle(order)
    for k in order:
        t = time.perf_counter()
        p = subprocess.Popen(cmds[k], stdout=devnull)
        _, status, ru = os.wait4(p.pid, 0)
        if status != 0:
            sys.exit(f"failed: {k}")
        res[k].append(((time.perf_counter() - t) * 1000, (ru.ru_utime + ru.ru_stime) * 1000))
q = lambda a, f: a[int(f * (len(a) - 1))]
print(f"{'command':24s} {'wall median':>11s} {'p10-p90':>11s} {'cpu median':>10s} {'p10-p90':>11s}")
for k, v in res.items():
    w = sorted(x[0] for x in v)
    c = sorted(x[1] for x in v)
    print(f"{k:24s} {statistics.median(w):9.0f}ms {q(w, .1):5.0f}-{q(w, .9):4.0f} {statistics.median(c):8.0f}ms {q(c, .1):5.0f}-{q(c, .9):4.0f}")
