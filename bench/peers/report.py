#!/usr/bin/python3
"""Table and chart of a `make bench-peers` run (bench/peers/run.sh).

    report.py RESULTS.tsv CHART.png [CAPTION]

Reads the lines of bench_peers and peers.py, prints p50/p99 per size and
method with the ratio of each p50 to the raw read's (C, same run), the
fills and the machine's page-fault cost, and draws the ratios as a bar
chart (log scale) with gnuplot.
"""
import os
import subprocess
import sys
import tempfile

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import fmt_us  # noqa: E402

ORDER = ["larder-first", "larder-repeat", "larder-head", "read", "mmap",
         "lmdb", "sqlite", "redis", "memcached", "python-read", "diskcache",
         "joblib"]
WHAT = {
    "larder-first": "larder, first hit (known version)",
    "larder-repeat": "larder, repeat hit (one handle)",
    "larder-head": "larder, head lookup (no version)",
    "read": "raw open+read+close",
    "mmap": "raw open+mmap+munmap",
    "lmdb": "LMDB get (read txn)",
    "sqlite": "SQLite blob select",
    "redis": "Redis GET (TCP loopback)",
    "memcached": "memcached get (TCP loopback)",
    "python-read": "Python open().read()",
    "diskcache": "diskcache get (Python)",
    "joblib": "joblib.Memory hit (Python)",
}


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit("usage: report.py RESULTS.tsv CHART.png [CAPTION]")
    # in gnuplot's double-quoted title: no quote, no backslash
    caption = sys.argv[3] if len(sys.argv) == 4 else ""
    caption = caption.replace('"', "").replace("\\", "")
    hits, fills, faults, sizes = {}, [], {}, []
    with open(sys.argv[1]) as f:
        for line in f:
            c = line.rstrip("\n").split("\t")
            if c[0] == "hit":
                if c[1] not in sizes:
                    sizes.append(c[1])
                hits[(c[1], c[2])] = (int(c[3]), float(c[4]), float(c[5]))
            elif c[0] == "fill":
                fills.append((c[1], int(c[2]), float(c[3]), float(c[4])))
            elif c[0] == "fault":
                faults[c[1]] = (int(c[2]), float(c[3]), float(c[4]))

    print(f"\n{'warm hit':36} {'size':>7} {'n':>5} {'p50':>10} {'p99':>10} "
          f"{'p50/read':>9}")
    for size in sizes:
        read = hits.get((size, "read"))
        for m in ORDER:
            if (size, m) not in hits:
                continue
            n, p50, p99 = hits[(size, m)]
            ratio = f"{p50 / read[1]:.2f}x" if read else "-"
            print(f"{WHAT[m]:36} {size:>7} {n:>5} {fmt_us(p50):>10} "
                  f"{fmt_us(p99):>10} {ratio:>9}")
        print()

    print(f"{'fill: put of 1 MiB, a new key each':36} {'':>7} {'n':>5} "
          f"{'p50':>10} {'p99':>10}")
    for name, n, p50, p99 in fills:
        print(f"{name:36} {'':>7} {n:>5} {fmt_us(p50):>10} {fmt_us(p99):>10}")

    if "mmap-touch-1MiB" in faults and "read-1MiB" in faults:
        m, r = faults["mmap-touch-1MiB"][1], faults["read-1MiB"][1]
        per_page = (m - r) / 256 * 1000
        print(f"\npage-fault cost here: mmap + touch of 1 MiB {fmt_us(m)}, read "
              f"of 1 MiB {fmt_us(r)} (p50): {m / r:.2f}x, "
              + (f"{per_page:.0f} ns a 4 KiB page more than copying it"
                 if per_page > 0 else "mapping is cheaper than copying"))

    # The chart: one cluster per method, a bar per size, p50 / raw read.
    methods = [m for m in ORDER if m != "read"
               and any((s, m) in hits for s in sizes)]
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as d:
        for m in methods:
            row = ['"' + WHAT[m] + '"']
            for s in sizes:
                read = hits.get((s, "read"))
                v = hits.get((s, m))
                row.append(f"{v[1] / read[1]:.4f}" if v and read else "NaN")
            d.write(" ".join(row) + "\n")
    cols = ", ".join(
        f"'{d.name}' using {i + 2}:xtic(1) title '{s}'"
        for i, s in enumerate(sizes))
    script = f"""
set terminal pngcairo size 1100,560 font 'sans,10'
set output '{sys.argv[2]}'
set title "Warm hit, p50 as a multiple of a raw open+read+close of the same size (lower is faster)\\n{caption}"
set bmargin 9
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set grid ytics
set ylabel 'p50 / raw read p50 (log scale)'
set xtics rotate by -30 scale 0 font ',9'
set key top left
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb 'black'
plot {cols}
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    finally:
        os.unlink(d.name)
    print(f"\nchart: {sys.argv[2]}")


main()
