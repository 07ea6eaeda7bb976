#!/usr/bin/env python3
"""Benchmarks action mode (what `action.yml` runs) against act on the shared workloads and
prints a table.

  cargo build --release && benches/action.py [--tess target/release/tess] [--runs 5]

For the fanout (16 jobs x 10 steps) and chain (16 jobs in a row) workloads of
benches/workloads.py, GitHub syntax:
  act                act -P ubuntu-latest=-self-hosted push (the peer: the jobs run by act)
  tess none          tess run --github-actions --report none
  tess statuses      tess run --github-actions --report statuses, to a fake GitHub API
                     (a Python HTTP server on loopback): wall time, requests sent, and the
                     lag from a job's end (its JobFinished event) to GitHub having its final
                     status (p50 / max over all jobs of all runs)
Wall times are medians over --runs. Standard library only.
"""
import argparse, http.server, json, os, shutil, socket, statistics, subprocess, sys, tempfile
import threading, time

HERE = os.path.dirname(os.path.abspath(__file__))


class FakeGitHub(http.server.ThreadingHTTPServer):
    """Records (time, context, state, description) of each status POSTed."""

    def __init__(self):
        self.statuses = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACKs add
        # 40 ms to every answer (the fake's cost, not the client's).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200, {"full_name": "bench/app"})

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        with self.server.lock:
            self.server.statuses.append(
                (time.time(), body.get("context"), body.get("state"), body.get("description")))
        self.answer(201, body)


def action_env(root, api):
    env = dict(os.environ)
    env.update({
        "GITHUB_STEP_SUMMARY": os.path.join(root, "summary.md"),
        "GITHUB_OUTPUT": os.path.join(root, "output.txt"),
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": os.path.join(root, "event.json"),
        "GITHUB_REPOSITORY": "bench/app",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_SHA": "0" * 39 + "1",
        "TESS_API_URL": api,
        "TESS_GITHUB_TOKEN": "bench-token",
    })
    with open(env["GITHUB_EVENT_PATH"], "w") as f:
        json.dump({"ref": "refs/heads/main", "after": env["GITHUB_SHA"],
                   "repository": {"full_name": "bench/app"}}, f)
    return env


def timed(cmd, cwd, env=None):
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{cmd} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return took, out.stdout


def job_ends(stdout):
    """name -> epoch seconds of each JobFinished event (the --json event stream)."""
    ends = {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("type") == "job_finished":
            ends[event["name"]] = parse_ts(event["ts"])
    return ends


def parse_ts(ts):
    from datetime import datetime
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tess", default=os.path.join(HERE, "..", "target", "release", "tess"))
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    tess = os.path.abspath(args.tess)
    act = shutil.which("act")
    work = tempfile.mkdtemp(prefix="tess-action-bench-")
    subprocess.run([sys.executable, os.path.join(HERE, "workloads.py"), work],
                   check=True, stdout=subprocess.DEVNULL)
    fake = FakeGitHub()
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{fake.server_address[1]}"
    rows = []
    try:
        for workload in ["fanout", "chain"]:
            root = os.path.join(work, workload)
            env = action_env(root, api)
            pipeline = ".github/workflows/bench.yml"
            if act:
                walls = [timed([act, "-P", "ubuntu-latest=-self-hosted", "push"], root)[0]
                         for _ in range(args.runs)]
                rows.append((workload, "act", statistics.median(walls), "", ""))
            walls = [timed([tess, "run", "--github-actions", "--report", "none", pipeline],
                           root, env)[0] for _ in range(args.runs)]
            rows.append((workload, "tess none", statistics.median(walls), "", ""))
            walls, lags, requests = [], [], []
            for _ in range(args.runs):
                with fake.lock:
                    fake.statuses.clear()
                took, out = timed([tess, "run", "--json", "--github-actions", "--report",
                                   "statuses", pipeline], root, env)
                walls.append(took)
                with fake.lock:
                    sent = list(fake.statuses)
                requests.append(len(sent))
                finals = {}
                for at, context, state, description in sent:
                    if state != "pending":
                        finals[context.rsplit("/", 1)[-1]] = at
                for name, ended in job_ends(out).items():
                    if name in finals:
                        lags.append(finals[name] - ended)
            lag = (f"{statistics.median(lags) * 1000:.1f} / {max(lags) * 1000:.1f} ms"
                   if lags else "n/a")
            rows.append((workload, "tess statuses", statistics.median(walls),
                         f"{statistics.median(requests):.0f}", lag))
    finally:
        fake.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'workload':<10} {'tool':<15} {'wall (median)':>14} {'requests':>9}  status lag p50 / max")
    for workload, tool, wall, requests, lag in rows:
        print(f"{workload:<10} {tool:<15} {wall:>12.3f} s {requests:>9}  {lag}")
    print(f"runs: {args.runs}; machine: {os.cpu_count()} cores, {os.uname().machine}")


if __name__ == "__main__":
    main()
