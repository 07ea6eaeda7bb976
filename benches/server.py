#!/usr/bin/env python3
"""Benchmarks `tess server` + `tess runner` on loopback and prints a table.

  cargo build --release && benches/server.py [--tess target/release/tess] [--quick]

For each database (SQLite; PostgreSQL when TESS_TEST_POSTGRES_URL is set, e.g. from
scripts/postgres.sh) it measures (RUNNER_DIR=/dev/shm/x puts the runners' work directories
on tmpfs; by default they are in the temporary directory):
  latency     webhook POSTed -> first step started, one idle long-polling runner (p50/p99)
  dispatch    2,000 one-step jobs of one run through 4 runners x 4 slots (jobs/s)
  intake      signed push deliveries accepted (202) by 8 concurrent clients (deliveries/s)
Standard library only; every process is started and stopped here.
"""
import argparse, hashlib, hmac, http.client, json, os, re, shutil, statistics, subprocess
import sys, tempfile, threading, time, urllib.parse, uuid

SECRET = "bench-secret"
TOKEN = "bench-token"


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=b", *args], cwd=cwd,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Setup:
    """A `tess server` on `database`; `bare` shares another setup's repository (replicas),
    `forge_url` sends its commit statuses to a (fake) GitHub API."""

    def __init__(self, tess, database, root, bare=None, forge_url=None):
        self.tess, self.root = tess, root
        self.bare = bare or os.path.join(root, "origin.git")
        self.work = os.path.join(root, "work")
        if not bare:
            git(root, "init", "-q", "--bare", "-b", "main", self.bare)
            git(root, "init", "-q", "-b", "main", self.work)
            git(self.work, "remote", "add", "origin", self.bare)
        report = f'[repo.report]\napi_url = "{forge_url}"\ntoken = "forge-token"\n' if forge_url else ""
        with open(os.path.join(root, "tess.toml"), "w") as f:
            f.write(f'api_tokens = ["{TOKEN}"]\nregistration_token = "reg"\n'
                    f'[[repo]]\nforge = "github"\nname = "bench/app"\n'
                    f'clone_url = "{self.bare}"\nwebhook_secret = "{SECRET}"\n{report}')
        self.server = subprocess.Popen(
            [tess, "server", "--config", os.path.join(root, "tess.toml"),
             "--listen", "127.0.0.1:0", "--database-url", database],
            stdout=subprocess.PIPE, stderr=open(os.path.join(root, "server.log"), "w"), text=True)
        line = self.server.stdout.readline()
        self.url = re.search(r"http://\S+", line).group(0)
        self.host, self.port = urllib.parse.urlparse(self.url).netloc.split(":")
        self.runners = []
        self.runner_dir = os.environ.get("RUNNER_DIR") or root

    def commit(self, workflow):
        os.makedirs(os.path.join(self.work, ".github/workflows"), exist_ok=True)
        with open(os.path.join(self.work, ".github/workflows/ci.yml"), "w") as f:
            f.write(workflow)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-qm", "bench", "--allow-empty")
        git(self.work, "push", "-qf", "origin", "HEAD:refs/heads/main")
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=self.work, check=True,
                              capture_output=True, text=True).stdout.strip()

    def runner(self, name, concurrency):
        p = subprocess.Popen(
            [self.tess, "runner", "--server", self.url, "--registration-token", "reg",
             "--name", name, "--concurrency", str(concurrency), "--poll-seconds", "30",
             "--workdir", os.path.join(self.runner_dir, "runner-" + name)],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.root, name + ".log"), "w"))
        self.runners.append(p)

    def stop_runners(self):
        for p in self.runners:
            p.kill()
            p.wait()
        self.runners = []

    def close(self):
        self.stop_runners()
        self.server.kill()
        self.server.wait()

    def conn(self):
        return http.client.HTTPConnection(self.host, int(self.port), timeout=60)

    def api(self, conn, path):
        conn.request("GET", path, headers={"Authorization": "Bearer " + TOKEN})
        r = conn.getresponse()
        body = r.read()
        return json.loads(body) if r.getheader("content-type", "").startswith("application/json") else body.decode()

    def push(self, conn, sha):
        body = json.dumps({"ref": "refs/heads/main", "before": "0" * 40, "after": sha,
                           "created": True, "deleted": False,
                           "repository": {"full_name": "bench/app"}}).encode()
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        delivery = str(uuid.uuid4())
        conn.request("POST", "/hooks/github", body=body, headers={
            "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sig, "Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        assert r.status == 202, r.status
        return "github:" + delivery

    def run_of(self, conn, delivery):
        while True:
            ds = self.api(conn, "/api/v1/deliveries")["deliveries"]
            d = next((d for d in ds if d["id"] == delivery), None)
            if d and d["status"] == "planned":
                return d["runs"][0]
            if d and d["status"] not in ("received", "planning"):
                raise SystemExit(f"delivery {delivery}: {d}")
            time.sleep(0.002)

    def wait_finished(self, conn, run_id, timeout=600, every=0.005):
        # The run list (no jobs) is cheap to ask for; the run itself only once finished.
        deadline = time.time() + timeout
        while time.time() < deadline:
            runs = self.api(conn, "/api/v1/runs?limit=5")["runs"]
            status = next((r["status"] for r in runs if r["id"] == run_id), None)
            if status in ("success", "failed", "cancelled"):
                return self.api(conn, f"/api/v1/runs/{run_id}")
            time.sleep(every)
        raise SystemExit(f"run {run_id} did not finish")


def latency(s, n):
    # The step appends its start time to a file: the benchmark watches the file, so its
    # own API calls do not compete with the server while it measures.
    stamps = os.path.join(s.root, "stamps")
    sha = s.commit("on: push\njobs:\n  one:\n    runs-on: self-hosted\n    steps:\n"
                   f"      - run: date +%s.%N >> {stamps}\n")
    s.runner("latency", 1)
    conn = s.conn()
    samples = []
    for i in range(n + 1):
        t0 = time.time()
        s.push(conn, sha)
        while True:
            try:
                lines = open(stamps).read().split()
            except FileNotFoundError:
                lines = []
            if len(lines) > i:
                break
            time.sleep(0.0005)
        if i > 0:  # the first one also makes the runner's checkout of the commit
            samples.append((float(lines[i]) - t0) * 1000)
        while True:  # the runner is idle again before the next delivery
            runs = s.api(conn, "/api/v1/runs?limit=1")["runs"]
            if runs and runs[0]["status"] == "success":
                break
            time.sleep(0.01)
    s.stop_runners()
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def dispatch(s, jobs):
    workflow = "on: push\njobs:\n" + "".join(
        f"  j{i}:\n    runs-on: self-hosted\n    steps:\n      - run: /bin/true\n" for i in range(jobs))
    sha = s.commit(workflow)
    for r in range(4):
        s.runner(f"d{r}", 4)
    conn = s.conn()
    database_before = database_cpu_ms()
    delivery = s.push(conn, sha)
    run_id = s.run_of(conn, delivery)
    run = s.wait_finished(conn, run_id, every=0.25)
    database = database_cpu_ms() - database_before
    # CPU per job (the processes' own, and their waited-for children's: the steps).
    runners = [cpu_ms(p.pid) for p in s.runners]
    server = cpu_ms(s.server.pid)
    s.stop_runners()
    ok = sum(1 for j in run["jobs"] if j["state"] == "success")
    first = min(j["started_at"] for j in run["jobs"])
    last = max(j["finished_at"] for j in run["jobs"])
    cpu = (sum(r[0] for r in runners) / jobs, sum(r[1] for r in runners) / jobs, server[0] / jobs,
           database / jobs)
    return ok, jobs / ((last - first) / 1000), cpu


def database_cpu_ms():
    """CPU milliseconds used so far by the PostgreSQL server's processes (0 without one)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # Its exited backends' time is in the postmaster's children's.
        if stat.split(" (", 1)[1].startswith("postgres)"):
            total += sum(stat_cpu_ms(stat))
    return total


def cpu_ms(pid):
    """(own, children's) CPU milliseconds of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        return stat_cpu_ms(f.read())


def stat_cpu_ms(stat):
    fields = stat.rsplit(")", 1)[1].split()
    tick = 1000 / os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) * tick, (cutime + cstime) * tick


def intake(s, total, clients):
    sha = s.commit("on: push\njobs:\n  one:\n    runs-on: [self-hosted, nowhere]\n"
                   "    steps:\n      - run: 'true'\n")
    per = total // clients
    def post():
        conn = s.conn()
        for _ in range(per):
            s.push(conn, sha)
    threads = [threading.Thread(target=post) for _ in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = per * clients / (time.time() - t0)
    conn = s.conn()
    while True:
        ds = s.api(conn, "/api/v1/deliveries")["deliveries"]
        if all(d["status"] != "received" and d["status"] != "planning" for d in ds):
            break
        time.sleep(0.05)
    planned = per * clients / (time.time() - t0)
    return accepted, planned


def one(bench, url, tess, n, jobs, deliveries):
    """Runs one benchmark on a fresh server and database: (headline value, detail)."""
    root = tempfile.mkdtemp(prefix="tess-bench-")
    if url:
        db = "tess_bench_" + uuid.uuid4().hex[:8]
        subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {db}"], check=True)
        database = url.rsplit("/", 1)[0] + "/" + db
    else:
        database = f"sqlite://{root}/tess.db?mode=rwc"
    s = Setup(tess, database, root)
    try:
        if bench == "latency":
            p50, p99 = latency(s, n)
            return p99, f"p50 {p50:.1f} ms"
        if bench == "dispatch":
            ok, rate, (runner, steps, server, database) = dispatch(s, jobs)
            return rate, (f"{ok} ok; CPU ms/job: runners {runner:.2f}, steps {steps:.2f}, "
                          f"server {server:.2f}" + (f", PostgreSQL {database:.2f}" if url else ""))
        accepted, planned = intake(s, deliveries, 8)
        return accepted, f"{planned:.0f} planned/s"
    finally:
        s.close()
        shutil.rmtree(root, ignore_errors=True)
        if url:
            subprocess.run(["psql", url, "-qc", f"DROP DATABASE IF EXISTS {db}"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tess", default="target/release/tess")
    ap.add_argument("--quick", action="store_true", help="smaller workloads")
    ap.add_argument("--only", choices=("latency", "dispatch", "intake"), help="one benchmark")
    ap.add_argument("--database", choices=("sqlite", "postgres"), help="one database")
    ap.add_argument("--runs", type=int, default=1,
                    help="repeat each benchmark, report the median run (and the range)")
    args = ap.parse_args()
    tess = os.path.abspath(args.tess)
    n, jobs, deliveries = (30, 400, 400) if args.quick else (200, 2000, 2000)
    databases = [("sqlite", None)]
    if os.environ.get("TESS_TEST_POSTGRES_URL"):
        databases.append(("postgres", os.environ["TESS_TEST_POSTGRES_URL"]))
    databases = [d for d in databases if args.database in (None, d[0])]
    rows = []
    for name, url in databases:
        for bench in [b for b in ("latency", "dispatch", "intake") if args.only in (None, b)]:
            results = []
            for _ in range(args.runs):
                results.append(one(bench, url, tess, n, jobs, deliveries))
            results.sort(key=lambda r: r[0])
            value, detail = results[len(results) // 2]
            if len(results) > 1:
                detail += f" (runs: {', '.join(f'{r[0]:.1f}' for r in results)})"
            label = {"latency": f"webhook -> first step (n={n})",
                     "dispatch": f"dispatch {jobs} jobs, 4x4 slots",
                     "intake": f"intake {deliveries} deliveries, 8 clients"}[bench]
            unit = {"latency": "ms p99", "dispatch": "jobs/s", "intake": "accepted/s"}[bench]
            rows.append((name, label, f"{value:.1f} {unit}", detail))
    print(f"{'database':<10} {'benchmark':<40} {'result':<22} {'detail'}")
    for r in rows:
        print(f"{r[0]:<10} {r[1]:<40} {r[2]:<22} {r[3]}")


if __name__ == "__main__":
    main()
