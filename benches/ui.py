#!/usr/bin/env python3
"""Benchmarks the web UI's pages with 10,000 runs stored and prints a table.

  cargo build --release && benches/ui.py [--tess target/release/tess] [--runs 10000]

For each database (SQLite; PostgreSQL when TESS_TEST_POSTGRES_URL is set, e.g. from
scripts/postgres.sh): 10,000 runs (three queued jobs each, no runner) are made through
signed push webhooks, then each page is fetched 50 times over loopback by a logged-in
client: the time from sending the request to the last byte of the page (median, p95).

With chromedriver on PATH (scripts/chromium.sh), a real headless Chromium then opens the
log page of a running job (a runner leased it through the runner protocol and uploaded
200 lines) 20 times: the first contentful paint (the page's lines are in its HTML; the end
of DOMContentLoaded where headless Chromium reports no paint) from the navigation's start, and the time from a runner's upload of a new line to the line
showing on the open page (the live stream). Standard library only; every process is
started and stopped here.
"""
import argparse, hashlib, hmac, http.client, json, os, re, statistics, subprocess, sys
import tempfile, threading, time, urllib.parse

SECRET = "bench-secret"
TOKEN = "bench-token"
WORKFLOW = """name: ui-bench
on: push
jobs:
  build:
    runs-on: nobody
    steps: [{run: make}]
  test:
    needs: build
    runs-on: nobody
    steps: [{run: make test}]
  deploy:
    needs: test
    runs-on: nobody
    steps: [{run: make deploy}]
"""


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=b", *args], cwd=cwd,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def server(tess, root, database):
    bare, work = os.path.join(root, "origin.git"), os.path.join(root, "work")
    git(root, "init", "-q", "--bare", "-b", "main", bare)
    git(root, "init", "-q", "-b", "main", work)
    os.makedirs(os.path.join(work, ".github/workflows"))
    with open(os.path.join(work, ".github/workflows/ci.yml"), "w") as f:
        f.write(WORKFLOW)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "bench")
    git(work, "push", "-q", bare, "HEAD:refs/heads/main")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True,
                         capture_output=True, text=True).stdout.strip()
    git(work, "checkout", "-qb", "live")
    with open(os.path.join(work, ".github/workflows/ci.yml"), "w") as f:
        f.write(WORKFLOW.replace("runs-on: nobody", "runs-on: live"))
    git(work, "commit", "-qam", "live")
    git(work, "push", "-q", bare, "HEAD:refs/heads/live")
    live_sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True,
                              capture_output=True, text=True).stdout.strip()
    with open(os.path.join(root, "tess.toml"), "w") as f:
        f.write(f'api_tokens = ["{TOKEN}"]\nregistration_token = "reg"\n'
                f'[[repo]]\nforge = "github"\nname = "bench/app"\n'
                f'clone_url = "{bare}"\nwebhook_secret = "{SECRET}"\n')
    proc = subprocess.Popen(
        [tess, "server", "--config", os.path.join(root, "tess.toml"), "--listen",
         "127.0.0.1:0", "--database-url", database],
        stdout=subprocess.PIPE, stderr=open(os.path.join(root, "server.log"), "w"), text=True)
    url = re.search(r"http://\S+", proc.stdout.readline()).group(0)
    host, port = urllib.parse.urlparse(url).netloc.split(":")
    return proc, host, int(port), sha, live_sha


def databases(bench):
    """(name, a fresh directory, a fresh database URL) for SQLite, and for PostgreSQL when
    TESS_TEST_POSTGRES_URL is set."""
    root = tempfile.mkdtemp(prefix=f"tess-{bench}-bench-")
    yield "sqlite", root, f"sqlite://{root}/tess.db?mode=rwc"
    url = os.environ.get("TESS_TEST_POSTGRES_URL")
    if url:
        db = f"tess_{bench}_bench_{os.getpid()}"
        subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {db}"], check=True)
        yield "postgres", tempfile.mkdtemp(prefix=f"tess-{bench}-bench-"), url.rsplit("/", 1)[0] + "/" + db


def request(host, port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def make_runs(host, port, sha, count):
    payload = json.dumps({"ref": "refs/heads/main", "after": sha,
                          "before": "0" * 40, "repository": {"full_name": "bench/app"}}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()
    todo = list(range(count))
    lock = threading.Lock()

    def send():
        while True:
            with lock:
                if not todo:
                    return
                n = todo.pop()
            r, _ = request(host, port, "POST", "/hooks/github", payload, {
                "content-type": "application/json", "x-github-event": "push",
                "x-github-delivery": f"ui-bench-{n}", "x-hub-signature-256": signature})
            assert r.status == 202, r.status

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    auth = {"authorization": f"Bearer {TOKEN}"}
    while True:  # every delivery planned
        _, data = request(host, port, "GET", "/api/v1/deliveries?limit=1000", headers=auth)
        pending = [d for d in json.loads(data)["deliveries"] if d["status"] in ("received", "planning")]
        if not pending:
            break
        time.sleep(0.5)


def measure(host, port, cookie, path, n=50):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        r, data = request(host, port, "GET", path, headers={"cookie": cookie})
        times.append((time.perf_counter() - start) * 1000)
        assert r.status == 200, (path, r.status)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], len(data)


class Browser:
    """A ChromeDriver process with one headless Chromium session (WebDriver over HTTP)."""

    def __init__(self, driver):
        self.port = 9600 + os.getpid() % 300
        self.proc = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                self.call("GET", "/status")
                break
            except OSError:
                time.sleep(0.05)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        binary = next((b for b in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(b)), None)
        options = {"args": args, **({"binary": binary} if binary else {})}
        answer = self.call("POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}})
        self.session = answer["value"]["sessionId"]

    def call(self, method, path, body=None):
        r, data = request("127.0.0.1", self.port, method, path,
                          json.dumps(body).encode() if body is not None else None,
                          {"content-type": "application/json"})
        return json.loads(data)

    def command(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)["value"]

    def eval(self, script):
        return self.command("POST", "/execute/sync", {"script": script, "args": []})

    def close(self):
        try:
            self.command("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait()


def running_job(host, port, sha):
    """A run whose `build` job a runner (spoken to over the protocol) leased and wrote 200
    lines of log to; returns (run id, a function appending one line)."""
    r, data = request(host, port, "POST", "/api/v1/runner/register", json.dumps({
        "registration_token": "reg", "name": "bench-runner", "labels": ["live"],
        "version": "bench"}).encode(), {"content-type": "application/json"})
    runner = json.loads(data)["token"]
    auth = {"authorization": f"Bearer {runner}", "content-type": "application/json"}
    poll = json.dumps({"labels": ["live"], "free_slots": 1, "version": "bench", "wait_seconds": 5,
                       "load": {"cpu": 0, "memory": 0, "running_jobs": 0}}).encode()
    payload = json.dumps({"ref": "refs/heads/live", "after": sha, "before": "0" * 40,
                          "repository": {"full_name": "bench/app"}}).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()
    request(host, port, "POST", "/hooks/github", payload, {
        "content-type": "application/json", "x-github-event": "push",
        "x-github-delivery": "ui-bench-live", "x-hub-signature-256": signature})
    while True:
        r, data = request(host, port, "POST", "/api/v1/runner/poll", poll, auth)
        if r.status == 200:
            lease = json.loads(data)
            break
    job = {k: lease[k] for k in ("run_id", "job_key", "attempt", "lease_token")}
    state = {"offset": 0}

    def append(text):
        r, _ = request(host, port, "POST", "/api/v1/runner/logs", json.dumps(
            {**job, "offset": state["offset"], "data": text}).encode(), auth)
        assert r.status < 300, r.status
        state["offset"] += len(text.encode())

    append("".join(f"line {n}: \x1b[32mok\x1b[0m compiling crate {n}\n" for n in range(200)))
    return lease["run_id"], lease["job_key"], append


def browser_phase(host, port, cookie, sha, name):
    driver = next((os.path.join(d, "chromedriver") for d in os.environ.get("PATH", "").split(":")
                   if os.path.exists(os.path.join(d, "chromedriver"))), None)
    if driver is None:
        print(f"{name:<9} (no chromedriver: scripts/chromium.sh installs it; browser timings skipped)")
        return
    run, key, append = running_job(host, port, sha)
    browser = Browser(driver)
    try:
        base = f"http://{host}:{port}"
        browser.command("POST", "/url", {"url": f"{base}/login"})
        browser.command("POST", "/cookie", {"cookie": {"name": cookie.split("=")[0],
                                                      "value": cookie.split("=", 1)[1]}})
        page = f"{base}/runs/{run}/jobs/{urllib.parse.quote(key)}"
        paints, lives = [], []
        for n in range(20):
            browser.command("POST", "/url", {"url": page})
            paint, lines = browser.eval(
                "const p = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint');"
                "const n = performance.getEntriesByType('navigation')[0];"
                "return [p ? p.startTime : n.domContentLoadedEventEnd, document.querySelectorAll('#log > div').length]")
            assert lines >= 200, lines
            paints.append(paint)
            marker = f"live-{n}-{time.time()}"
            sent = time.perf_counter()
            append(marker + "\n")
            while not browser.eval(f"return document.getElementById('log').textContent.includes('{marker}')"):
                pass
            lives.append((time.perf_counter() - sent) * 1000)
        for label, times in (("log page: first paint", paints), ("log page: line → shown", lives)):
            times.sort()
            print(f"{name:<9} {label:<28} {statistics.median(times):9.2f} {times[int(len(times) * 0.95) - 1]:7.2f} {'':>8}")
    finally:
        browser.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tess", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "tess"))
    p.add_argument("--runs", type=int, default=10000)
    args = p.parse_args()
    print(f"{'database':<9} {'page':<28} {'median_ms':>9} {'p95_ms':>7} {'bytes':>8}")
    for name, root, url in databases("ui"):
        proc, host, port, sha, live_sha = server(os.path.abspath(args.tess), root, url)
        try:
            started = time.perf_counter()
            make_runs(host, port, sha, args.runs)
            made = time.perf_counter() - started
            r, _ = request(host, port, "POST", "/login", f"token={TOKEN}".encode(),
                           {"content-type": "application/x-www-form-urlencoded"})
            cookie = r.getheader("set-cookie").split(";")[0]
            _, data = request(host, port, "GET", "/api/v1/runs?limit=1",
                              headers={"authorization": f"Bearer {TOKEN}"})
            run = json.loads(data)["runs"][0]["id"]
            pages = [("runs (/)", "/"), ("runs, filtered by state", "/?status=queued"),
                     ("runs, page 2", "/?before=" + urllib.parse.quote(f"{int(time.time()*1000)}.z")),
                     ("a run (DAG)", f"/runs/{run}"), ("a job's log", f"/runs/{run}/jobs/build"),
                     ("runners", "/runners"), ("versions", "/repos/bench/app/versions")]
            for label, path in pages:
                median, p95, size = measure(host, port, cookie, path)
                print(f"{name:<9} {label:<28} {median:9.2f} {p95:7.2f} {size:8}")
            browser_phase(host, port, cookie, live_sha, name)
            print(f"{name:<9} ({args.runs} runs made in {made:.1f} s)")
        finally:
            proc.terminate()
            proc.wait()
    print(f"machine: {os.cpu_count()} cores, {os.uname().machine}")


if __name__ == "__main__":
    sys.exit(main())
