#!/usr/bin/env python3
"""fleetday_panels.py DASHBOARD_DIR PLAN_DIR: the panel half of bench/fleetday.sh.

Every variable query and every panel target's rawSql of DASHBOARD_DIR/*.json, expanded as
Grafana sends it (tests/integration/test_dashboards.c is the reference: template variables
first, every variable with All at All = the quoted list of its query's values (one without
All, $node, at its first value, as Grafana opens it), then
the PostgreSQL data source's macros; $__interval = the range over 1000 points rounded as
Grafana's roundInterval, at least the panel's own interval or 1s), for the last 1 h, 24 h,
7 d and 30 d ending now, run through psql (PG* environment) as
EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON): the best "Execution Time" of 3. Prints one line
per query and range, '!' after a time over 1000 ms; for those, a timed EXPLAIN ANALYZE goes
to PLAN_DIR and its dominant node (the most exclusive time) is printed under the table.
"""
import datetime
import glob
import json
import math
import os
import re
import subprocess
import sys

RANGES = [("1h", 3600), ("24h", 86400), ("7d", 7 * 86400), ("30d", 30 * 86400)]
NICE = [(1500, "1s"), (3500, "2s"), (7500, "5s"), (12500, "10s"), (17500, "15s"),
        (25000, "20s"), (45000, "30s"), (90000, "1m"), (210000, "2m"), (450000, "5m"),
        (750000, "10m"), (1050000, "15m"), (1500000, "20m"), (2700000, "30m"),
        (5400000, "1h"), (9000000, "2h"), (16200000, "3h"), (32400000, "6h"),
        (86400000, "12h"), (604800000, "1d"), (1814400000, "1w"), (3628800000, "30d")]
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000,
         "y": 31536000}
SLOW_MS = 1000.0


def interval_s(text):
    m = re.fullmatch(r"([0-9.]+)(ms|s|m|h|d|w|M|y)", text.strip())
    return float(m.group(1)) * UNITS[m.group(2)] if m else -1


def panel_interval(range_s, min_interval):
    ms = range_s * 1000.0 / 1000
    iv = "1y"
    for below, nice in NICE:
        if ms < below:
            iv = nice
            break
    low = min_interval or "1s"
    return low if interval_s(low) > interval_s(iv) else iv


def psql(sql):
    r = subprocess.run(["psql", "-qXAt", "-v", "ON_ERROR_STOP=1"], input=sql, text=True,
                       capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip()[:400])
    return r.stdout


def rfc3339(t):
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    ms = t.microsecond // 1000
    if ms:
        s += (".%03d" % ms).rstrip("0")
    return s + "Z"


class Dash:
    def __init__(self, path):
        self.path = path
        self.d = json.load(open(path))
        self.vars = {}  # name -> list of values (All), or None for a datasource variable

    def quoted(self, name):
        return ",".join("'" + v.replace("'", "''") + "'" for v in self.vars[name])

    def expand(self, sql, frm, to, interval):
        """Template variables, then macros (test_dashboards.c's two passes)."""
        range_s = (to - frm).total_seconds()

        def var(m):
            name = m.group("b") or m.group("k") or m.group("n")
            fmt = m.group("bf") or m.group("kf")
            if name in self.vars:
                vals = self.vars[name]
                if fmt in (None, "sqlstring", "singlequote"):
                    return self.quoted(name)
                if fmt in ("csv", "raw"):
                    return ",".join(vals)
                raise ValueError("format %s of $%s" % (fmt, name))
            if name == "__interval":
                return interval
            if name == "__interval_ms":
                return "%d" % round(interval_s(interval) * 1000)
            if name == "__from":
                return "%d" % (frm.timestamp() * 1000)
            if name == "__to":
                return "%d" % (to.timestamp() * 1000)
            if name == "__range_s":
                return "%d" % range_s
            if name == "__range":
                return "%ds" % range_s
            return m.group(0)

        sql = re.sub(r"\$\{(?P<b>\w+)(?:\.\w+)?(?::(?P<bf>\w+))?\}"
                     r"|\[\[(?P<k>\w+)(?::(?P<kf>\w+))?\]\]|\$(?P<n>\w+)", var, sql)
        f, t = rfc3339(frm), rfc3339(to)

        def macro(m):
            name, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
            if name == "__timeFilter":
                return "%s BETWEEN '%s' AND '%s'" % (args[0], f, t)
            if name == "__timeFrom":
                return "'%s'" % f
            if name == "__timeTo":
                return "'%s'" % t
            if name in ("__timeGroup", "__timeGroupAlias"):
                s = interval_s(args[1].strip("'"))
                sec = "%d" % s if s == math.floor(s) else repr(s)
                out = "floor(extract(epoch from %s)/%s)*%s" % (args[0], sec, sec)
                return out + (' AS "time"' if name == "__timeGroupAlias" else "")
            if name == "__time":
                return '%s AS "time"' % args[0]
            raise ValueError("macro $%s" % name)

        sql = re.sub(r"\$(__\w+)\(([^)]*)\)", macro, sql)
        if "$" in re.sub(r"\$\$|'[^']*'", "", sql):
            raise ValueError("unexpanded $ in %.80s" % sql)
        return sql


def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))


def explain(sql, runs=3):
    best = None
    for _ in range(runs):
        out = psql("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql)
        ms = json.loads(out)[0]["Execution Time"]
        best = ms if best is None else min(best, ms)
    return best


def dominant(sql, path):
    """A timed EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) into path; the node with the most exclusive time."""
    out = psql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
    plan = json.loads(out)[0]
    with open(path, "w") as f:
        f.write(sql[:4000] + "\n\n" + json.dumps(plan, indent=1))
    best = (0.0, "")

    def walk(n):
        nonlocal best
        loops = n.get("Actual Loops", 1)
        total = n.get("Actual Total Time", 0) * loops
        kids = sum(c.get("Actual Total Time", 0) * c.get("Actual Loops", 1)
                   for c in n.get("Plans", []))
        own = total - kids
        what = n["Node Type"]
        for k in ("Relation Name", "Function Name", "Index Name", "CTE Name"):
            if k in n:
                what += " on " + n[k]
        what += " (rows %d x %d loops)" % (n.get("Actual Rows", 0), loops)
        if own > best[0]:
            best = (own, what)
        for c in n.get("Plans", []):
            walk(c)
    walk(plan["Plan"])
    jit = plan.get("JIT", {}).get("Timing", {}).get("Total", 0)
    # JIT compilation counts in Execution Time but in no node: say it when it weighs.
    # Planning is not in Execution Time either (a 32,600-value array over every partition).
    plan_ms = plan.get("Planning Time", 0)
    return "%s: %.0f ms of %.0f%s%s" % (best[1], best[0], plan["Execution Time"],
                                        "; JIT %.0f ms" % jit if jit >= 100 else "",
                                        "; planning %.0f ms" % plan_ms if plan_ms >= 100 else "")


def main():
    ddir, pdir = sys.argv[1], sys.argv[2]
    os.makedirs(pdir, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    rows, slow = [], []
    for path in sorted(glob.glob(os.path.join(ddir, "*.json"))):
        dash = Dash(path)
        dname = os.path.basename(path)[:-5]
        queries = []  # (title, sql, min interval)
        first_only = set()  # variables without All: Grafana opens them at their first value
        for v in dash.d.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                dash.vars[v["name"]] = []
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            queries.append(("var $" + v["name"], q, None))
            if not v.get("includeAll"):
                first_only.add(v["name"])
        for p in panels(dash.d.get("panels", [])):
            for i, t in enumerate(p.get("targets", [])):
                if t.get("rawSql"):
                    title = p.get("title", "?") + ("" if i == 0 else " #%d" % (i + 1))
                    queries.append((title, t["rawSql"], p.get("interval")))
        for title, sql, min_iv in queries:
            times = []
            for rname, rs in RANGES:
                frm = now - datetime.timedelta(seconds=rs)
                iv = panel_interval(rs, min_iv)
                try:
                    if title.startswith("var $"):
                        x = dash.expand(sql, frm, now, "1s")
                        name = title[5:]
                        if rname == "24h":  # All: the values over the dashboard's range
                            vals = [l for l in psql(x).split("\n") if l != ""]
                            dash.vars[name] = vals[:1] if name in first_only else vals
                    else:
                        x = dash.expand(sql, frm, now, iv)
                    ms = explain(x)
                    times.append(ms)
                    if ms > SLOW_MS:
                        fn = os.path.join(pdir, "%s-%s-%s.txt" % (
                            dname, re.sub(r"[^A-Za-z0-9]+", "_", title)[:40], rname))
                        slow.append((dname, title, rname, ms, dominant(x, fn), fn))
                except Exception as e:  # report and go on: one bad panel is a finding
                    times.append(None)
                    slow.append((dname, title, rname, -1, "ERROR " + str(e)[:300], ""))
            rows.append((dname, title, times))
            print("%-15s %-48.48s %s" % (dname, title, " ".join(
                "%10s" % ("error" if ms is None else "%.1f%s" % (ms, "!" if ms > SLOW_MS else " "))
                for ms in times)), flush=True)
    print("%-15s %-48s %s" % ("", "(ms; ranges)", " ".join("%10s" % r for r, _ in RANGES)))
    if slow:
        print("\nover %d ms or failed (dominant node of a timed EXPLAIN ANALYZE, plan file):" % SLOW_MS)
        for dname, title, rname, ms, dom, fn in slow:
            print("  %s / %s / %s: %.0f ms -- %s %s" % (dname, title, rname, ms, dom, fn))


if __name__ == "__main__":
    main()
