"""Turns bench/driver's JSON lines (stdin) into run lines for runs.txt; exits 1 on errors.

usage: driver_lines.py SYSTEM PEAK_RSS_KB
"""
import json
import sys

system, hwm_kb = sys.argv[1], int(sys.argv[2])
bad = 0
for line in sys.stdin:
    if not line.strip():
        continue
    r = json.loads(line)
    bad += r["errors"]
    spr = r.get("statements_per_req")
    spr_s = f"{spr:.2f}" if spr is not None else "-"
    print(
        f"system={system} workload={r['workload']} c={r['concurrency']} rps={r['rps']:.1f} "
        f"p50_ms={r['p50_ms']:.3f} p99_ms={r['p99_ms']:.3f} max_ms={r['max_ms']:.3f} "
        f"requests={r['requests']} bad={r['errors']} rss_mb={hwm_kb / 1024:.1f} statements_per_req={spr_s}"
    )
sys.exit(1 if bad else 0)
