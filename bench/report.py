"""The benchmark table: medians of bench/run.sh's runs, ratios and the targets.

usage: report.py RUNS_TXT --machine M --command C --reps N --duration S [--write BENCHMARKS.md]

Prints the table (Markdown). With --write, replaces the part of BENCHMARKS.md between
the `bench:results` markers (creating the file or the markers if needed) and leaves the
rest of the file — the notes written by hand — alone.
"""

import argparse
import datetime
import re
import statistics
import sys
from collections import defaultdict

BEGIN = "<!-- bench:results:begin (written by bench/run.sh; do not edit by hand) -->"
END = "<!-- bench:results:end -->"
ORDER = ["postgraphile", "ceiling", "coursegraph-postgres", "coursegraph-postgres-rls",
         "coursegraph-postgres-custom-role", "coursegraph-sqlite"]
NAMES = {
    "postgraphile": "PostGraphile 5.1.5 (PostgreSQL, RLS)",
    "ceiling": "ceiling (poem + async-graphql, no DB, no auth)",
    "coursegraph-postgres": "coursegraph, PostgreSQL 15",
    "coursegraph-postgres-rls": "coursegraph, PostgreSQL 15, row-level security enforced",
    "coursegraph-postgres-custom-role": "coursegraph, PostgreSQL 15, the viewer holding a custom role",
    "coursegraph-sqlite": "coursegraph, SQLite (embedded)",
}
WORKLOADS = ["W1-5", "W1-20", "W1-100", "W2", "W3-cold", "W3-warm", "W4"]

ap = argparse.ArgumentParser()
ap.add_argument("runs")
ap.add_argument("--machine", required=True)
ap.add_argument("--command", required=True)
ap.add_argument("--reps", type=int, required=True)
ap.add_argument("--duration", type=int, required=True)
ap.add_argument("--write")
args = ap.parse_args()

groups = defaultdict(list)
for line in open(args.runs):
    kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
    if "system" in kv:
        groups[(kv["system"], kv["workload"], int(kv["c"]))].append(kv)


def med(runs, key):
    vals = [float(r[key]) for r in runs if r.get(key) not in (None, "-", "unchecked")]
    return statistics.median(vals) if vals else None


def rps_of(system, workload, c):
    runs = groups.get((system, workload, c))
    return med(runs, "rps") if runs else None


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


rows = []
keys = sorted(
    groups,
    key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, WORKLOADS.index(k[1]) if k[1] in WORKLOADS else 99, k[2]),
)
for system, workload, c in keys:
    runs = groups[(system, workload, c)]
    rps = med(runs, "rps")
    rps_all = [float(r["rps"]) for r in runs]
    pgl = rps_of("postgraphile", workload, c)
    ceil = rps_of("ceiling", workload, c)
    rows.append(
        "| {sys} | {wl} | {c} | {rps} ({lo}–{hi}) | {p50} | {p99} | {rss} | {st} | {vp} | {vc} |".format(
            sys=NAMES.get(system, system),
            wl=workload,
            c=c,
            rps=fmt(rps, ".0f"),
            lo=fmt(min(rps_all), ".0f"),
            hi=fmt(max(rps_all), ".0f"),
            p50=fmt(med(runs, "p50_ms"), ".2f"),
            p99=fmt(med(runs, "p99_ms"), ".2f"),
            rss=fmt(max(float(r["rss_mb"]) for r in runs), ".0f"),
            st=fmt(med(runs, "statements_per_req"), ".2f") if system.startswith("coursegraph") else
            ("4 (peer README)" if system == "postgraphile" else "0"),
            vp=f"{rps / pgl:.2f}×" if pgl and system != "postgraphile" else "",
            vc=f"{rps / ceil:.0%}" if ceil and system != "ceiling" else "",
        )
    )


def target(ok, text):
    return f"- {'✅' if ok else '❌'} {text}"


targets = []
pg = groups.get(("coursegraph-postgres", "W1-20", 8))
pgl = rps_of("postgraphile", "W1-20", 8)
ceil = rps_of("ceiling", "W1-20", 8)
if pg and pgl:
    r, p99, rss = med(pg, "rps"), med(pg, "p99_ms"), max(float(x["rss_mb"]) for x in pg)
    targets.append(target(r >= 3 * pgl, f"W1 on PostgreSQL, c=8: {r / pgl:.2f}× PostGraphile's req/s (target ≥ 3×)"))
    targets.append(target(p99 <= 10, f"W1 on PostgreSQL, c=8: p99 {p99:.2f} ms (target ≤ 10 ms)"))
    targets.append(target(rss <= 64, f"W1 on PostgreSQL, c=8: peak RSS {rss:.0f} MiB (target ≤ 64 MiB)"))
lite = groups.get(("coursegraph-sqlite", "W1-20", 8))
if lite and ceil:
    r = med(lite, "rps")
    targets.append(target(r >= 0.5 * ceil, f"W1 on SQLite, c=8: {r / ceil:.0%} of the ceiling's req/s (target ≥ 50 %)"))
for wl in ("W1-20", "W2", "W4"):
    plain, rls = groups.get(("coursegraph-postgres", wl, 8)), groups.get(("coursegraph-postgres-rls", wl, 8))
    if plain and rls:
        a, b = med(plain, "rps"), med(rls, "rps")
        targets.append(f"- row-level security on PostgreSQL, {wl} c=8: {b:.0f} vs {a:.0f} req/s without it "
                       f"({b / a - 1:+.0%}); statements per request {med(rls, 'statements_per_req') or 0:.2f} vs "
                       f"{med(plain, 'statements_per_req') or 0:.2f}")
for wl in ("W1-20", "W3-warm"):
    plain, custom = groups.get(("coursegraph-postgres", wl, 8)), groups.get(("coursegraph-postgres-custom-role", wl, 8))
    if plain and custom:
        a, b = med(plain, "rps"), med(custom, "rps")
        targets.append(target(b >= 0.95 * a, f"a custom role on PostgreSQL, {wl} c=8: {b:.0f} vs {a:.0f} req/s with the "
                              f"built-in role ({b / a - 1:+.0%}; target within 5 %); statements per request "
                              f"{med(custom, 'statements_per_req') or 0:.2f} vs {med(plain, 'statements_per_req') or 0:.2f}"))
custom_warm = groups.get(("coursegraph-postgres-custom-role", "W3-warm", 8))
if custom_warm:
    s = med(custom_warm, "statements_per_req")
    targets.append(target(s is not None and s == 0, f"a custom role on PostgreSQL: a warm request (W3-warm) costs "
                          f"{fmt(s, '.2f')} statements (target: 0, as with the built-in role)"))
for system in ("coursegraph-sqlite", "coursegraph-postgres"):
    st = [med(groups[(system, f"W1-{n}", 8)], "statements_per_req") for n in (5, 20, 100) if (system, f"W1-{n}", 8) in groups]
    if st and None not in st:
        flat = max(st) - min(st) < 0.05
        targets.append(target(flat and max(st) <= 4, f"{NAMES[system]}: statements per W1 request for first=5/20/100: "
                              + " / ".join(f"{s:.2f}" for s in st) + " (target: constant, ≤ 4 including auth)"))
    cold = groups.get((system, "W3-cold", 8))
    if cold:
        # run.sh stops before this table when any run's row counts are not exactly 1,000 / 50 / 1,000.
        p99, bad = med(cold, "p99_ms"), sum(int(r.get("bad", 0)) for r in cold)
        targets.append(target(p99 is not None and p99 <= 20 and bad == 0,
                              f"{NAMES[system]}: first-sight provisioning (W3-cold) p99 {fmt(p99, '.2f')} ms, "
                              f"{bad} errors, row counts exact after every run (target: p99 ≤ 20 ms, no errors)"))
    warm = groups.get((system, "W3-warm", 8))
    if warm:
        s = med(warm, "statements_per_req")
        targets.append(target(s is not None and s <= 1.0, f"{NAMES[system]}: a warm request (W3-warm) costs {s:.2f} statements "
                              "(target: no write, ≤ 1 for identity; 0 with the context cache)"))

today = datetime.date.today().isoformat()
table = "\n".join([
    f"Measured {today} on {args.machine}. Command: `{args.command}` "
    f"(median of {args.reps} runs of {args.duration} s each; W3 is a fixed number of requests).",
    "",
    "| system | workload | conc. | req/s median (min–max) | p50 ms | p99 ms | peak RSS MiB | SQL statements / request | × PostGraphile | % of ceiling |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    *rows,
    "",
    "Targets (ratios from this same run):",
    "",
    *targets,
])
print(table)

if args.write:
    try:
        doc = open(args.write).read()
    except FileNotFoundError:
        doc = "# Benchmarks\n\n"
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in doc and END in doc:
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n## Results\n\n" + block + "\n"
    open(args.write, "w").write(doc)
    print(f"wrote {args.write}", file=sys.stderr)
