"""Turns the samples tests/bench/run.sh collected into the table of
`make bench` and build/bench/results.json.

    report.py SAMPLES NOTES META OUT_JSON

SAMPLES: lines "key value" (one per repetition of a measurement).
NOTES:   lines "key reason": why a measurement has no samples (n/a).
META:    lines "key value" describing the run (date, machine, ...).

Each figure is the median of its samples, with min and max; a ratio is
median over median; pass/fail compares with the target of issue 6.
"""
import json
import statistics
import sys


def load_samples(path):
    s = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                try:
                    s.setdefault(parts[0], []).append(float(parts[1]))
                except ValueError:
                    pass
    return s


def load_pairs(path):
    d = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line.strip():
                    k, _, v = line.partition(" ")
                    d.setdefault(k, v)
    except FileNotFoundError:
        pass
    return d


def stat(v):
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v),
            "samples": v}


# Rows of the table. figure/baseline: a sample key, or a function of the
# stats for derived figures. ratio: "fb" figure/baseline; None = none.
# target: (op, value, what): what is "ratio" or "figure".
ROWS = [
    # section, label, unit, figure key, baseline key, baseline label, target
    ("spawn", "spawn ceiling: bash -c true, 1 in flight", "jobs/s",
     "spawn.bash.1.rate", None, None, None),
    ("spawn", "spawn ceiling: bash -c true, 2 in flight", "jobs/s",
     "spawn.bash.2.rate", None, None, None),
    ("spawn", "bare spawn of bash, p50 (spawn to reaped)", "ms",
     "spawn.bash.1.p50_ms", None, None, None),
    ("spawn", "spawn ceiling: sh (dash), 1 in flight (info)", "jobs/s",
     "spawn.sh.1.rate", None, None, None),
    ("spawn", "spawn ceiling: sh (dash), 2 in flight (info)", "jobs/s",
     "spawn.sh.2.rate", None, None, None),
    ("celery", "Celery e2e, 2000 true jobs (vs ceiling)", "jobs/s",
     "celery.e2e_rate", "spawn.bash.2.rate", "ceiling 2", None),
    ("celery", "Celery one at a time, p50 submit->result", "ms",
     "celery.p50_ms", "spawn.bash.1.p50_ms", "bare spawn", None),
    ("rabbitmq", "RabbitMQ publish, wait for each confirm", "msg/s",
     "rmq.confirm_each", None, None, None),
    ("rabbitmq", "RabbitMQ publish, 1000 confirms in flight", "msg/s",
     "rmq.confirm_window", None, None, None),
    ("rabbitmq", "RabbitMQ publish, 64 confirms in flight", "msg/s",
     "rmq.confirm_window64", None, None, None),
    ("rabbitmq", "RabbitMQ consume+ack, prefetch 100", "msg/s",
     "rmq.consume", None, None, None),
    ("mongo", "MongoDB raw bulk insert (libmongoc)", "doc/s",
     "mongo.raw_rate", None, None, None),
    ("bashexec", "bashexec e2e, 3000 true jobs, 1 worker x2", "jobs/s",
     "bx.e2e_rate", "spawn.bash.2.rate", "ceiling 2", ("ratio", ">=", 0.8)),
    ("bashexec", "bashexec e2e vs Celery", "jobs/s",
     "bx.e2e_rate", "celery.e2e_rate", "Celery", ("ratio", ">=", 2.5)),
    ("bashexec", "bashexec one at a time, p50 submit->terminal (poll)", "ms",
     "bx.p50_ms", "spawn.bash.1.p50_ms", "bare spawn", None),
    ("bashexec", "  ... over one bare spawn", "ms",
     "bx.p50_over_spawn_ms", "spawn.bash.1.p50_ms", "bare spawn", ("figure", "<=", 0.5)),
    ("bashexec", "  ... by the jobs' own timestamps (1 ms res.)", "ms",
     "bx.server_p50_ms", "spawn.bash.1.p50_ms", "bare spawn", None),
    ("bashexec", "  ... followed over SSE (info)", "ms",
     "bx.sse_p50_ms", "spawn.bash.1.p50_ms", "bare spawn", None),
    ("api", "POST /v1/jobs (wrk)", "req/s",
     "api.post_rate", "rmq.confirm_window", "RMQ confirms", ("ratio", ">=", 0.5)),
    ("api", "  ... vs RabbitMQ, 64 in flight (info)", "req/s",
     "api.post_rate", "rmq.confirm_window64", "RMQ 64", None),
    ("api", "GET /v1/jobs/{id} (wrk)", "req/s",
     "api.get_rate", None, None, ("figure", ">=", 20000)),
    ("recorder", "bx-recorder, a backlog of events -> MongoDB", "doc/s",
     "rec.rate", "mongo.raw_rate", "raw insert", ("ratio", ">=", 0.8)),
    ("recorder", "  ... fed while it writes (info)", "doc/s",
     "rec.live_rate", "mongo.raw_rate", "raw insert", None),
    ("scale", "scale: sleep 0.1, 1 worker x4", "jobs/s",
     "scale.1", None, None, None),
    ("scale", "scale: 2 workers x4 (vs 2x one worker)", "jobs/s",
     "scale.2", "scale.linear2", "linear", ("ratio", ">=", 0.9)),
    ("scale", "scale: 4 workers x4 (vs 4x one worker)", "jobs/s",
     "scale.4", "scale.linear4", "linear", ("ratio", ">=", 0.9)),
    ("memory", "RSS just started: bx-api (info)", "MB", "mem.fresh.bx-api", None, None, None),
    ("memory", "RSS just started: bx-recorder (info)", "MB", "mem.fresh.bx-recorder", None, None, None),
    ("memory", "RSS just started: bx-worker (info)", "MB", "mem.fresh.bx-worker", None, None, None),
    ("memory", "RSS idle after the load: bx-api", "MB",
     "mem.bx-api", None, None, ("figure", "<=", 10)),
    ("memory", "RSS idle after the load: bx-recorder", "MB",
     "mem.bx-recorder", None, None, ("figure", "<=", 10)),
    ("memory", "RSS idle after the load: bx-worker", "MB",
     "mem.bx-worker", None, None, ("figure", "<=", 10)),
    ("memory", "worker RSS growth under `yes`, 1 s..3.5 s", "MB",
     "mem.yes_growth", "mem.yes_start", "RSS at 1 s", ("figure", "<=", 1.0)),
]

# Rows whose baseline is shown for context only: a ratio would mean nothing.
NO_RATIO = {"bx.p50_over_spawn_ms", "mem.yes_growth"}

# Where a row has no samples, the note of its measurement says why.
NOTE_OF = {
    "spawn": "spawn", "celery": "celery", "rmq": "rabbitmq", "mongo": "mongo_raw",
    "bx": "e2e", "api": "api", "rec": "recorder", "scale": "scale", "mem": "memory",
}


def derive(s):
    """Figures computed from others."""
    if "bx.p50_ms" in s and "spawn.bash.1.p50_ms" in s:
        base = statistics.median(s["spawn.bash.1.p50_ms"])
        s["bx.p50_over_spawn_ms"] = [v - base for v in s["bx.p50_ms"]]
    if "scale.1" in s:
        one = statistics.median(s["scale.1"])
        s["scale.linear2"] = [2 * one]
        s["scale.linear4"] = [4 * one]
    return s


def note_for(key, notes):
    if key in notes:
        return notes[key]
    head = key.split(".")[0]
    part = NOTE_OF.get(head, head)
    if key.startswith("bx.sse"):
        part = "sse" if "sse" in notes else "latency"
    elif key.startswith("bx.p50") or key.startswith("bx.server"):
        part = "latency"
    for k in (part, head):
        if k in notes:
            return notes[k]
    return "no samples"


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "ms" or unit == "MB" or abs(v) < 10:
        return "%.2f" % v
    return "%.0f" % v


def main(argv):
    samples_path, notes_path, meta_path, out_path = argv
    s = derive(load_samples(samples_path))
    notes = load_pairs(notes_path)
    meta = load_pairs(meta_path)
    rows = []
    for section, label, unit, fkey, bkey, blabel, target in ROWS:
        fig = stat(s.get(fkey))
        base = stat(s.get(bkey)) if bkey else None
        ratio = None
        if fig and base and base["median"] and fkey not in NO_RATIO:
            ratio = fig["median"] / base["median"]
        row = {"section": section, "name": label, "unit": unit, "key": fkey,
               "figure": fig, "baseline": base, "baseline_name": blabel, "ratio": ratio,
               "target": None, "pass": None, "note": None}
        if target:
            what, op, val = target
            row["target"] = {"of": what, "op": op, "value": val}
            v = ratio if what == "ratio" else (fig["median"] if fig else None)
            if v is not None:
                row["pass"] = v >= val if op == ">=" else v <= val
        if not fig:
            row["note"] = "n/a (%s)" % note_for(fkey, notes)
        elif bkey and not base and target and target[0] == "ratio":
            row["note"] = "n/a baseline (%s)" % note_for(bkey, notes)
        rows.append(row)

    out = {"meta": meta, "results": rows}
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")

    # the table
    w = max(len(r["name"]) for r in rows)
    hdr = "%-*s  %-7s %21s  %21s  %6s  %-13s %s" % (
        w, "figure", "unit", "median [min..max]", "baseline (median)", "ratio", "target", "result")
    print(hdr)
    print("-" * len(hdr))
    fails = 0
    for r in rows:
        fig, base = r["figure"], r["baseline"]
        if fig:
            f_txt = "%s [%s..%s]" % (fmt(fig["median"], r["unit"]), fmt(fig["min"], r["unit"]),
                                     fmt(fig["max"], r["unit"]))
        else:
            f_txt = "n/a"
        b_txt = "%s %s" % (r["baseline_name"], fmt(base["median"], r["unit"] if r["unit"] in ("ms",) else "")) if base else ""
        ratio = "%.2fx" % r["ratio"] if r["ratio"] is not None else ""
        tgt = ""
        if r["target"]:
            t = r["target"]
            tgt = ("%s %g%s" % ("≥" if t["op"] == ">=" else "≤", t["value"],
                                "x" if t["of"] == "ratio" else " " + r["unit"]))
        res = {True: "PASS", False: "FAIL", None: ""}[r["pass"]]
        if r["target"] and r["pass"] is None:
            res = "n/a"
        if r["pass"] is False:
            fails += 1
        line = "%-*s  %-7s %21s  %21s  %6s  %-13s %s" % (w, r["name"], r["unit"], f_txt, b_txt,
                                                        ratio, tgt, res)
        if r["note"]:
            line += "  " + r["note"]
        print(line.rstrip())
    print()
    print("results: %s  (%d target(s) missed)" % (out_path, fails))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
