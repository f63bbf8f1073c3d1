"""``python -m bench [--quick] [--only C1,C2]``: run the benchmarks, print one table, write it
as JSON under bench/results/.

A missed target is a result, not a failure: the exit status is non-zero only when a benchmark
crashes (so CI keeps them from rotting without gating on a noisy machine's numbers).
"""

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback

from bench import common

BENCHMARKS = {
    "C1": "bench.c1_sla_clock",
    "C2": "bench.c2_sweep",
    "C3": "bench.c3_breach_latency",
    "C4": "bench.c4_write_path",
    "C5": "bench.c5_fan_out",
    "C6": "bench.c6_admin",
    "E1": "bench.e1_embedded",
    "B1": "bench.b1_status_page",
    "B2": "bench.b2_api_list",
    "B5": "bench.b5_alert_ingest",
    "M1": "bench.m1_metrics",
    "O1": "bench.o1_oncall",
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI: under 2 minutes)")
    parser.add_argument("--only", default="", help="comma-separated, e.g. C1,C2")
    parser.add_argument(
        "--profile", action="store_true", help="profile with pyinstrument where a target is missed"
    )
    args = parser.parse_args(argv)
    wanted = [name.strip().upper() for name in args.only.split(",") if name.strip()]
    unknown = set(wanted) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    names = wanted or list(BENCHMARKS)

    # Point Django (set up below) and every subprocess at the bench's own database and Redis.
    os.environ.update(common.bench_environment())
    os.environ["ITSM_VAR_DIR"] = tempfile.mkdtemp(prefix="itsm-bench-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "itsm.settings"
    if args.profile:
        os.environ["BENCH_PROFILE"] = "1"
    import django

    django.setup()

    started = time.monotonic()
    rows, crashed = [], []
    try:
        for name in names:
            common.say(f"== {name} ({'quick' if args.quick else 'full'})")
            began = time.monotonic()
            try:
                module = importlib.import_module(BENCHMARKS[name])
                found = module.run(args.quick)
            except Exception:
                traceback.print_exc()
                crashed.append(name)
                found = [common.Row("crashed", "see the traceback above", met=False)]
            for row in found:
                row.bench = name
            rows.extend(found)
            common.say(f"-- {name} took {time.monotonic() - began:.1f} s")
            common.say(common.format_table(found))
    finally:
        common.drop_template()

    elapsed = time.monotonic() - started
    print()
    print(f"itsm benchmarks ({'quick' if args.quick else 'full'}), {elapsed:.0f} s")
    print(common.format_table(rows))
    missed = [f"{r.bench} {r.figure}" for r in rows if r.met is False]
    print(f"\ntargets met: {sum(r.met is True for r in rows)}, missed: {len(missed)}")

    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = common.RESULTS_DIR / f"{stamp}{'-quick' if args.quick else ''}.json"
    path.write_text(
        json.dumps(
            {
                "quick": args.quick,
                "benchmarks": names,
                "seconds": round(elapsed, 1),
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "rows": [r.as_dict() for r in rows],
                "crashed": crashed,
            },
            indent=2,
            default=str,
        )
    )
    path.with_suffix(".md").write_text(common.format_table(rows, markdown=True) + "\n")
    print(f"written to {path.relative_to(common.ROOT)} (and .md)")
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
