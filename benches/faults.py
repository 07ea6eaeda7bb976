#!/usr/bin/env python3
"""Measures `tess server` and `tess runner` under the faults of issue 14 and prints a table.

  cargo build --release && benches/faults.py [--tess target/release/tess]

  bodies    32 concurrent 24 MB webhook bodies with a wrong signature: the server's peak
            RSS (VmHWM) and its RSS afterwards
  idle      1,100 idle connections to a server limited to 1,024 file descriptors
            (prlimit): /healthz latency and the server's open descriptors
  slow      50 connections sending half a request header: seconds until the server has
            closed them all (default header timeout 10 s)
  sigterm   a runner whose server is unreachable: milliseconds from SIGTERM to its exit
Standard library only; every process is started and stopped here.
"""
import argparse, http.client, os, re, signal, socket, subprocess, sys, tempfile, threading
import time


def start_server(tess, root, prefix=()):
    with open(os.path.join(root, "tess.toml"), "w") as f:
        f.write('api_tokens = ["t"]\nregistration_token = "r"\n'
                '[[repo]]\nforge = "github"\nname = "o/r"\nclone_url = "/nonexistent"\n'
                'webhook_secret = "s"\n')
    p = subprocess.Popen([*prefix, tess, "server", "--config", os.path.join(root, "tess.toml"),
                          "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        m = re.search(r"listening on http://(\S+)", line)
        if m:
            host, port = m.group(1).split(":")
            return p, host, int(port)
    raise SystemExit("the server did not start")


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def bodies(tess, root):
    p, host, port = start_server(tess, root)
    body = b"x" * (24 * 1024 * 1024)

    def send():
        c = http.client.HTTPConnection(host, port, timeout=60)
        try:
            c.request("POST", "/hooks/github", body=body,
                      headers={"x-github-event": "push", "x-hub-signature-256": "sha256=00"})
            c.getresponse().read()
        except OSError:
            pass

    threads = [threading.Thread(target=send) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    peak = status_kib(p.pid, "VmHWM") // 1024
    after = status_kib(p.pid, "VmRSS") // 1024
    p.kill()
    p.wait()
    return [("bodies: peak RSS", f"{peak} MiB"), ("bodies: RSS afterwards", f"{after} MiB")]


def idle(tess, root):
    p, host, port = start_server(tess, root, prefix=("prlimit", "--nofile=1024:1024"))
    held = []
    for _ in range(1100):
        try:
            held.append(socket.create_connection((host, port), timeout=5))
        except OSError:
            break
    started = time.monotonic()
    answered = None
    while time.monotonic() - started < 30:
        try:
            c = http.client.HTTPConnection(host, port, timeout=5)
            c.request("GET", "/healthz")
            if c.getresponse().read() == b"ok":
                answered = time.monotonic() - started
                break
        except OSError:
            time.sleep(0.05)
    fds = len(os.listdir(f"/proc/{p.pid}/fd"))
    for s in held:
        s.close()
    p.kill()
    p.wait()
    latency = f"{answered * 1000:.0f} ms" if answered is not None else "no answer in 30 s"
    return [("idle: connections opened", str(len(held))), ("idle: /healthz answered after", latency),
            ("idle: server descriptors", str(fds))]


def slow(tess, root):
    p, host, port = start_server(tess, root)
    conns = []
    for _ in range(50):
        s = socket.create_connection((host, port))
        s.sendall(b"POST /hooks/github HTTP/1.1\r\nhost: x\r\n")
        conns.append(s)
    started = time.monotonic()
    open_ = list(conns)
    while open_ and time.monotonic() - started < 30:
        still = []
        for s in open_:
            s.settimeout(0.01)
            try:
                while s.recv(4096):
                    pass
            except (socket.timeout, BlockingIOError):
                still.append(s)
            except OSError:
                pass
        open_ = still
    closed = time.monotonic() - started
    p.kill()
    p.wait()
    if open_:
        return [("slow: all 50 closed after", f"{len(open_)} of 50 still open after 30 s")]
    return [("slow: all 50 closed after", f"{closed:.1f} s")]


def sigterm(tess, root):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = os.path.join(root, "runner.log")
    r = subprocess.Popen([tess, "runner", "--server", f"http://127.0.0.1:{port}",
                          "--registration-token", "t", "--workdir", os.path.join(root, "w")],
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "retrying in" not in open(log).read():
        time.sleep(0.05)
    sent = time.monotonic()
    r.send_signal(signal.SIGTERM)
    try:
        r.wait(timeout=30)
    except subprocess.TimeoutExpired:
        r.kill()
        r.wait()
        return [("sigterm: exit after", "still running 30 s after SIGTERM (killed)")]
    return [("sigterm: exit after", f"{(time.monotonic() - sent) * 1000:.0f} ms (code {r.returncode})")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tess", default=os.path.join(os.path.dirname(__file__), "..", "target",
                                                   "release", "tess"))
    args = ap.parse_args()
    tess = os.path.abspath(args.tess)
    rows = []
    for measure in (bodies, idle, slow, sigterm):
        with tempfile.TemporaryDirectory() as root:
            rows += measure(tess, root)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
