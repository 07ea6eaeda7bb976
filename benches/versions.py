#!/usr/bin/env python3
"""Benchmarks pipeline versions and the cron scheduler of `tess server`; prints a table.

  cargo build --release && benches/versions.py [--tess target/release/tess] [--runs 10]

  sync unchanged   POST /api/v1/repos/{repo}/sync when the default branch shows nothing new:
                   fetch, read, validate, normalize and hash the plan1000 workload
                   (1,000 jobs, benches/workloads.py)
  sync changed     the same after a commit that changes one job: + diff and apply (CAS)
  diff             GET .../versions/{a}/diff/{b} between two plan1000 versions
  schedule lag     a `* * * * *` schedule, with the server's clock a file this script moves
                   minute by minute: from the minute coming (the file written) to the slot
                   claimed (the server's time), and to its run seen stored through the API
                   (polled every 10 ms) (p50 / max); with --real-minutes N, also N fires on
                   the real clock: the slot's claim time minus its minute
SQLite, or PostgreSQL with --database postgres://... (a fresh database is made there).
Standard library only.
"""
import argparse, http.client, json, os, re, shutil, statistics, subprocess, sys, tempfile
import time, urllib.parse, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "bench-token"


def git(cwd, *args):
    return subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=b", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


class Server:
    def __init__(self, tess, root, database, repos, clock):
        config = os.path.join(root, "tess.toml")
        with open(config, "w") as f:
            f.write(f'api_tokens = ["{TOKEN}"]\n')
            for name, url in repos:
                f.write(f'[[repo]]\nforge = "github"\nname = "{name}"\nclone_url = "{url}"\n')
        env = dict(os.environ)
        if clock:
            env["TESS_TEST_CLOCK_FILE"] = clock
        self.process = subprocess.Popen(
            [tess, "server", "--config", config, "--listen", "127.0.0.1:0",
             "--database-url", database],
            stdout=subprocess.PIPE, stderr=open(os.path.join(root, "server.log"), "w"),
            text=True, env=env)
        url = re.search(r"http://\S+", self.process.stdout.readline()).group(0)
        self.netloc = urllib.parse.urlparse(url).netloc

    def call(self, method, path):
        conn = http.client.HTTPConnection(self.netloc, timeout=60)
        conn.request(method, path, headers={"authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, json.loads(body or b"null")

    def stop(self):
        self.process.terminate()
        self.process.wait()


def wait(what, check, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    sys.exit(f"timed out waiting for {what}")


def real_clock(tess, root, repo, minutes):
    """Seconds from each slot's minute to its claim (both by the server's clock)."""
    real = os.path.join(root, "real")
    os.makedirs(real)
    server = Server(tess, real, f"sqlite://{real}/tess.db?mode=rwc", [("bench/nightly", repo)],
                    None)
    try:
        schedules = "/api/v1/repos/bench/nightly/schedules"

        def fired():
            return [s for s in server.call("GET", schedules)[1]["slots"] if s["status"] == "fired"]

        wait("the schedule to be seen", lambda: server.call("GET", schedules)[1]["slots"])
        wait(f"{minutes} fires", lambda: len(fired()) >= minutes, timeout=60 * minutes + 90)
        return [(s["at"] - s["slot"]) / 1000 for s in fired()[:minutes]]
    finally:
        server.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tess", default=os.path.join(HERE, "..", "target", "release", "tess"))
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--database")
    p.add_argument("--real-minutes", type=int, default=0,
                   help="also this many fires of a `* * * * *` schedule on the real clock")
    args = p.parse_args()
    tess = os.path.abspath(args.tess)
    root = tempfile.mkdtemp(prefix="tess-versions-bench-")
    subprocess.run([sys.executable, os.path.join(HERE, "workloads.py"),
                    root], check=True, stdout=subprocess.DEVNULL)
    big = os.path.join(root, "plan1000")
    git(big, "branch", "-M", "main")
    # A small repository with a schedule every minute.
    small = os.path.join(root, "nightly")
    os.makedirs(os.path.join(small, ".github/workflows"))
    with open(os.path.join(small, ".github/workflows/cron.yml"), "w") as f:
        f.write("on:\n  schedule:\n    - cron: '* * * * *'\njobs:\n  tick:\n"
                "    runs-on: self-hosted\n    steps:\n      - run: echo tick\n")
    git(small, "init", "-q", "-b", "main")
    git(small, "add", "-A")
    git(small, "commit", "-qm", "cron")
    clock = os.path.join(root, "clock")
    with open(clock, "w") as f:
        f.write("2026-01-05T10:00:30Z")
    database = f"sqlite://{root}/tess.db?mode=rwc"
    if args.database:
        # A fresh database, so nothing of an earlier run is found.
        name = "tess_bench_" + uuid.uuid4().hex[:8]
        subprocess.run(["psql", args.database, "-qc", f"CREATE DATABASE {name}"], check=True)
        database = args.database.rsplit("/", 1)[0] + "/" + name
    server = Server(tess, root, database, [("bench/big", big), ("bench/nightly", small)], clock)
    rows = []
    try:
        versions = "/api/v1/repos/bench/big/versions/current"
        wait("the first version", lambda: server.call("GET", versions)[0] == 200)
        sync = "/api/v1/repos/bench/big/sync"
        unchanged, changed, diffs = [], [], []
        ids = [server.call("GET", versions)[1]["version_id"]]
        workflow = os.path.join(big, ".github/workflows/bench.yml")
        text = open(workflow).read()
        for i in range(args.runs):
            start = time.perf_counter()
            status, body = server.call("POST", sync)
            unchanged.append(time.perf_counter() - start)
            assert body["outcome"] == "unchanged", body
            with open(workflow, "w") as f:
                f.write(text.replace("/bin/true", f"echo change-{i}", 1))
            git(big, "commit", "-qam", f"change {i}")
            start = time.perf_counter()
            status, body = server.call("POST", sync)
            changed.append(time.perf_counter() - start)
            assert body["outcome"] == "applied", body
            ids.append(body["version_id"])
            start = time.perf_counter()
            status, body = server.call("GET", f"/api/v1/repos/bench/big/versions/{ids[-2]}/diff/{ids[-1]}")
            diffs.append(time.perf_counter() - start)
            assert status == 200 and body["change_log"], body
        rows.append(("sync unchanged (1,000 jobs)", unchanged))
        rows.append(("sync changed (1,000 jobs)", changed))
        rows.append(("diff (1,000 jobs)", diffs))

        schedules = "/api/v1/repos/bench/nightly/schedules"

        def slots():
            return server.call("GET", schedules)[1]["slots"]

        wait("the schedule to be seen", lambda: any(s["status"] == "origin" for s in slots()))
        claimed, stored = [], []
        for minute in range(1, args.runs + 1):
            at = f"2026-01-05T10:{minute:02d}:00.000Z"
            written = time.time()
            with open(clock, "w") as f:
                f.write(at)
            slot_ms = int(time.mktime(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone) * 1000
            fired = wait(f"slot {at}", lambda: next(
                (s for s in slots() if s["slot"] == slot_ms and s["status"] == "fired" and s["runs"]), None))
            stored.append(time.time() - written)
            claimed.append(fired["at"] / 1000 - written)
        rows.append(("schedule lag: slot claimed", claimed))
        rows.append(("schedule lag: run stored (seen)", stored))
    finally:
        server.stop()
    try:
        if args.real_minutes:
            rows.append(("schedule, real clock: claimed - slot", real_clock(tess, root, small, args.real_minutes)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'measure':<36} {'p50':>10} {'max':>10}")
    for name, samples in rows:
        print(f"{name:<36} {statistics.median(samples) * 1000:>8.1f}ms {max(samples) * 1000:>8.1f}ms")
    kind = "PostgreSQL" if database.startswith("postgres") else "SQLite"
    print(f"runs: {args.runs}; {kind}; machine: {os.cpu_count()} cores, {os.uname().machine}")


if __name__ == "__main__":
    main()
