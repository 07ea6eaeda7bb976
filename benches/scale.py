#!/usr/bin/env python3
"""The scale test: two `tess server` replicas on one PostgreSQL, many runner processes.

  cargo build --release
  TESS_TEST_POSTGRES_URL=$(scripts/postgres.sh) benches/scale.py [--runners 64] [--deliveries 500]

500 signed push deliveries (20 one-step jobs each: 10,000 jobs) are POSTed round-robin to
the two replicas, as a load balancer would; 64 runner processes (1 slot each) long-poll
them, half each. Commit statuses go to a fake GitHub API on loopback, so the outbox is
part of the load. It prints: every job exactly once (the database's job rows and attempts,
and the step's own line per execution), throughput, p50/p99 queue wait (queued -> started,
from the database), the outbox's lag behind the last job, the peak of `tess_queue_depth`
and PostgreSQL connections, and the CPU each part used (which saturates first).
Standard library only; every process is started and stopped here.
"""
import argparse, http.server, os, shutil, subprocess, sys, tempfile, threading, time, uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server import Setup  # noqa: E402

JOBS_PER_RUN = 20
TICKS = os.sysconf("SC_CLK_TCK")


class FakeForge(http.server.ThreadingHTTPServer):
    """Accepts GitHub commit statuses and counts them, noting when the last one came."""

    daemon_threads = True

    def __init__(self):
        self.statuses, self.last = 0, 0.0
        self.lock = threading.Lock()
        forge = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with forge.lock:
                    forge.statuses += 1
                    forge.last = time.time()
                body = b'{"id": 1}'
                self.send_response(201)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


def cpu_seconds(pid):
    """User + system time of a process and of its reaped children (the steps it ran)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / TICKS


def postgres_cpu():
    total = 0.0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() in ("postgres", "postmaster"):
                        total += cpu_seconds(pid)
            except OSError:
                pass
    return total


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / TICKS, sum(v) / TICKS


def psql(url, sql):
    return subprocess.run(["psql", url, "-Atqc", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def metric(conn, name):
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tess", default="target/release/tess")
    ap.add_argument("--runners", type=int, default=64)
    ap.add_argument("--deliveries", type=int, default=500)
    args = ap.parse_args()
    base_url = os.environ.get("TESS_TEST_POSTGRES_URL")
    if not base_url:
        raise SystemExit("set TESS_TEST_POSTGRES_URL (scripts/postgres.sh starts one)")
    tess = os.path.abspath(args.tess)
    root = tempfile.mkdtemp(prefix="tess-scale-")
    db = "tess_scale_" + uuid.uuid4().hex[:8]
    psql(base_url, f"CREATE DATABASE {db}")
    database = base_url.rsplit("/", 1)[0] + "/" + db
    forge = FakeForge()
    stamps = os.path.join(root, "stamps")
    replicas = []
    try:
        # The repository both replicas mirror; the workflow's step records each execution.
        workflow = ("on: push\njobs:\n" + "".join(
                f"  j{i}:\n    runs-on: self-hosted\n    steps:\n"
                f"      - run: echo \"$GITHUB_RUN_ID $GITHUB_JOB\" >> {stamps}\n"
                for i in range(JOBS_PER_RUN)))
        for name in ("a", "b"):
            os.makedirs(os.path.join(root, name))
            replicas.append(Setup(tess, database, os.path.join(root, name),
                                  replicas[0].bare if replicas else None, forge.url))
        sha = replicas[0].commit(workflow)
        # A runner's first job clones the commit; warm every runner up before measuring so
        # the table is about the steady state (the warm-up runs are not counted).
        for i in range(args.runners):
            replicas[i % 2].runner(f"r{i}", 1)
        conns = [r.conn() for r in replicas]
        warm = [replicas[i % 2].push(conns[i % 2], sha) for i in range(-(-args.runners // JOBS_PER_RUN) * 2)]
        deadline = time.time() + 300
        while psql(database, "SELECT count(*) FROM jobs WHERE state <> 'success'") != "0" \
                or int(psql(database, "SELECT count(*) FROM jobs")) < len(warm) * JOBS_PER_RUN:
            if time.time() > deadline:
                raise SystemExit("the warm-up runs did not finish")
            time.sleep(0.2)
        warm_runs = set(psql(database, "SELECT id FROM runs").split())
        open(stamps, "w").close()

        pids = {"servers": [r.server.pid for r in replicas],
                "runners (and their steps)": [p.pid for r in replicas for p in r.runners]}
        before = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        before["postgres"] = postgres_cpu()
        busy0, all0 = machine_busy()
        peaks = {"queue": 0.0, "connections": 0}
        done = threading.Event()

        def sample():
            mconn = replicas[0].conn()
            while not done.is_set():
                peaks["queue"] = max(peaks["queue"], metric(mconn, "tess_queue_depth"))
                peaks["connections"] = max(peaks["connections"], int(psql(
                    database, "SELECT count(*) FROM pg_stat_activity "
                    f"WHERE datname = '{db}'")))
                done.wait(1.0)

        sampler = threading.Thread(target=sample)
        sampler.start()
        finished0 = sum(metric(c, "tess_jobs_finished_total") for c in conns)
        forge.statuses = 0
        t0 = time.time()
        posted = []
        lock = threading.Lock()

        def post(k):
            conn = replicas[k].conn()
            for _ in range(k, args.deliveries, 2):
                d = replicas[k].push(conn, sha)
                with lock:
                    posted.append(d)

        threads = [threading.Thread(target=post, args=(k,)) for k in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_posted = time.time()
        total = args.deliveries * JOBS_PER_RUN
        warm_list = ",".join(f"'{r}'" for r in warm_runs)
        # Waiting asks the replicas' counters (one HTTP request each), not the database,
        # so the benchmark adds little load where it measures.
        deadline = time.time() + 1800
        while True:
            finished = sum(metric(c, "tess_jobs_finished_total") for c in conns) - finished0
            if finished >= total:
                break
            if time.time() > deadline:
                raise SystemExit(f"only {finished} of {total} jobs finished")
            time.sleep(0.05)
        t_done = time.time()
        after = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        after["postgres"] = postgres_cpu()
        busy1, all1 = machine_busy()
        # The outbox: every run and job state reported; wait for it to drain.
        deadline = time.time() + 600
        while psql(database, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL") != "0":
            if time.time() > deadline:
                break
            time.sleep(0.1)
        done.set()
        sampler.join()

        where = f"run_id NOT IN ({warm_list})"
        runs = int(psql(database, f"SELECT count(*) FROM runs WHERE id NOT IN ({warm_list})"))
        ok = int(psql(database, f"SELECT count(*) FROM jobs WHERE {where} AND state = 'success'"))
        once = int(psql(database, f"SELECT count(*) FROM jobs WHERE {where} AND attempt = 1"))
        lines = open(stamps).read().split("\n")[:-1]
        waits = [int(x) for x in psql(
            database, f"SELECT started_at - queued_at FROM jobs WHERE {where} "
            "ORDER BY 1").split()]
        span = psql(database, f"SELECT min(queued_at), max(finished_at) FROM jobs WHERE {where}")
        first, last = (int(x) for x in span.split("|"))
        pending = psql(database, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL")
        print(f"scale test: 2 replicas on PostgreSQL, {args.runners} runners x 1 slot, "
              f"{args.deliveries} deliveries x {JOBS_PER_RUN} jobs")
        rows = [
            ("runs planned", f"{runs} of {args.deliveries}"),
            ("jobs success / ran once (attempt 1)", f"{ok} / {once} of {total}"),
            ("step executions (lines) / distinct", f"{len(lines)} / {len(set(lines))}"),
            ("deliveries accepted", f"{len(posted) / (t_posted - t0):.0f}/s"),
            ("throughput, first queued -> last finished", f"{total / ((last - first) / 1000):.0f} jobs/s"),
            ("end to end, first POST -> last finished", f"{t_done - t0:.1f} s"),
            ("queue wait p50 / p99 / max", f"{waits[len(waits) // 2]} / "
             f"{waits[int(len(waits) * 0.99)]} / {waits[-1]} ms"),
            ("outbox: statuses sent, lag after the last job",
             f"{forge.statuses}, {max(0.0, forge.last - t_done):.1f} s, {pending} pending"),
            ("peak tess_queue_depth / PostgreSQL connections",
             f"{peaks['queue']:.0f} / {peaks['connections']}"),
        ]
        cpu_all = (all1 - all0) / os.cpu_count()
        rows.append(("machine busy while jobs ran", f"{(busy1 - busy0) / (all1 - all0) * 100:.0f}%"
                     f" of {os.cpu_count()} cores"))
        for k in after:
            rows.append((f"CPU: {k}", f"{after[k] - before[k]:.1f} s "
                         f"({(after[k] - before[k]) / cpu_all / os.cpu_count() * 100:.0f}%)"))
        for label, value in rows:
            print(f"  {label:<48} {value}")
    finally:
        for r in replicas:
            r.close()
        forge.shutdown()
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run(["psql", base_url, "-qc", f"DROP DATABASE IF EXISTS {db}"])


if __name__ == "__main__":
    main()
