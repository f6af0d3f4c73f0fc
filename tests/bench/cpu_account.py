#!/usr/bin/env python3
"""Where the CPU of a run of jobs goes, process by process.

    cpu_account.py snap OUT.json NAME=PID...   CPU used so far by each process
                                               (its reaped children apart) and
                                               by the whole machine
    cpu_account.py diff A.json B.json JOBS     ms of CPU per job between the
                                               two snapshots, one line each

The worker's reaped children are the jobs' own shells: their CPU is the
cost of the commands themselves, what no job system can save. The rest is
the pipeline's. "other" is what the machine used beyond the processes
named (the load client, the kernel's softirqs, anything else running).
"""

import json
import os
import sys

TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


def proc_ticks(pid):
    """(own, reaped children) ticks of pid, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return utime + stime, cutime + cstime


def machine_ticks():
    with open("/proc/stat") as f:
        cpu = f.readline().split()[1:]
    v = [int(x) for x in cpu]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v[:8]) - idle  # guest time is already in user


def snap(out, pairs):
    procs = {}
    for p in pairs:
        name, _, pid = p.partition("=")
        if pid.isdigit():
            t = proc_ticks(int(pid))
            if t:
                procs[name] = {"pid": int(pid), "own": t[0], "children": t[1]}
    with open(out, "w") as f:
        json.dump({"machine": machine_ticks(), "procs": procs}, f)


def diff(a_path, b_path, jobs):
    a, b = (json.load(open(p)) for p in (a_path, b_path))
    rows, named = [], 0
    for name, pb in b["procs"].items():
        pa = a["procs"].get(name)
        if not pa or pa["pid"] != pb["pid"]:
            continue
        own = pb["own"] - pa["own"]
        rows.append((name, own))
        named += own
        kids = pb["children"] - pa["children"]
        if kids:
            rows.append((name + ": the commands (reaped children)", kids))
            named += kids
    total = b["machine"] - a["machine"]
    rows.append(("other (load client, kernel, the rest)", max(total - named, 0)))
    for name, ticks in rows:
        print("%-44s %7.3f ms/job" % (name, ticks * TICK_MS / jobs))
    print("%-44s %7.3f ms/job  (2 cores: at most %.0f jobs/s at this cost)"
          % ("machine, all busy CPU", total * TICK_MS / jobs,
             2000.0 / (total * TICK_MS / jobs) if total else 0))


def main(argv):
    if len(argv) >= 2 and argv[0] == "snap":
        snap(argv[1], argv[2:])
    elif len(argv) == 4 and argv[0] == "diff":
        diff(argv[1], argv[2], int(argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
