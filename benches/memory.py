#!/usr/bin/env python3
"""Memory of a long-running server and of idle runners, and prints a table.

  cargo build --release && benches/memory.py [--tess target/release/tess] [--runs 10000]

A server on SQLite (and PostgreSQL when TESS_TEST_POSTGRES_URL is set) gets 10,000 runs
through signed push webhooks (benches/ui.py's workload: three jobs each, for a label no
runner has), then 16 runner processes poll it for 20 s. Printed: the server's resident set
(VmRSS) and its peak (VmHWM) from /proc, and the runners' median and largest VmRSS.
"""
import argparse, os, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
import ui  # noqa: E402  (the same server set-up and workload)
from faults import status_kib  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tess", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "tess"))
    p.add_argument("--runs", type=int, default=10000)
    p.add_argument("--runners", type=int, default=16)
    args = p.parse_args()
    tess = os.path.abspath(args.tess)
    print(f"{'database':<9} {'process':<34} {'rss_mib':>8} {'peak_mib':>9}")
    for name, root, url in ui.databases("memory"):
        proc, host, port, sha, _ = ui.server(tess, root, url)
        runners = []
        try:
            ui.make_runs(host, port, sha, args.runs)
            for n in range(args.runners):
                runners.append(subprocess.Popen(
                    [tess, "runner", "--server", f"http://{host}:{port}", "--registration-token",
                     "reg", "--name", f"idle-{n}", "--labels", "idle", "--poll-seconds", "5",
                     "--workdir", os.path.join(root, f"runner-{n}")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(20)  # the runners register and long-poll; nothing is for them
            server_rss = status_kib(proc.pid, "VmRSS") / 1024
            server_peak = status_kib(proc.pid, "VmHWM") / 1024
            sizes = sorted(status_kib(r.pid, "VmRSS") / 1024 for r in runners)
            print(f"{name:<9} {f'server ({args.runs} runs, {args.runners} runners)':<34} {server_rss:8.1f} {server_peak:9.1f}")
            print(f"{name:<9} {'idle runner (median)':<34} {statistics.median(sizes):8.1f} {'':>9}")
            print(f"{name:<9} {'idle runner (largest)':<34} {sizes[-1]:8.1f} {'':>9}")
        finally:
            for r in runners:
                r.terminate()
            for r in runners:
                r.wait()
            proc.terminate()
            proc.wait()
    print(f"machine: {os.cpu_count()} cores, {os.uname().machine}")


if __name__ == "__main__":
    sys.exit(main())
