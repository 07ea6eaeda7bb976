#!/usr/bin/env python3
"""The benchmark workloads, each a git repository holding the same pipeline twice:
`.github/workflows/bench.yml` (GitHub Actions) and `.gitlab-ci.yml` (GitLab CI).

  fanout    16 independent jobs of 10 steps
  chain     16 jobs, each needing the one before
  steps     one job of 300 steps
  plan1000  1,000 jobs with up to 3 random needs each (seeded: the same DAG every time)
  log100m   one step printing 1,000,000 lines of 99 characters (100 MB)

Usage: benches/workloads.py OUTDIR   (byte for byte the workloads of the shared benchmark
kit, so figures stay comparable with earlier ones)."""
import os
import random
import subprocess
import sys

TRUE = "/bin/true"
LINE = "0123456789" * 9 + "012345678"


def workloads():
    big, rng = [], random.Random(7)
    for i in range(1000):
        k = min(i, rng.randint(0, 3))
        needs = sorted({f"j{rng.randrange(i)}" for _ in range(k)}) if i else []
        big.append((f"j{i}", needs, [TRUE]))
    return {
        "fanout": [(f"j{i}", [], [TRUE] * 10) for i in range(16)],
        "chain": [(f"j{i}", [f"j{i - 1}"] if i else [], [TRUE]) for i in range(16)],
        "steps": [("j0", [], [TRUE] * 300)],
        "plan1000": big,
        "log100m": [("j0", [], ["awk 'BEGIN{for(i=0;i<1000000;i++)print \"" + LINE + "\"}'"])],
    }


def github(jobs):
    lines = ["name: bench", "on: [push]", "jobs:"]
    for name, needs, steps in jobs:
        lines += [f"  {name}:", "    runs-on: ubuntu-latest"]
        if needs:
            lines.append(f"    needs: [{', '.join(needs)}]")
        lines.append("    steps:")
        lines += [f"      - run: {s}" for s in steps]
    return "\n".join(lines) + "\n"


def gitlab(jobs):
    lines = ["stages: [only]"]
    for name, needs, steps in jobs:
        lines += [f"{name}:", "  stage: only", f"  needs: [{', '.join(needs)}]", "  script:"]
        lines += [f"    - {s}" for s in steps]
    return "\n".join(lines) + "\n"


def write(root):
    for name, jobs in workloads().items():
        repo = os.path.join(root, name)
        os.makedirs(os.path.join(repo, ".github", "workflows"), exist_ok=True)
        with open(os.path.join(repo, ".github", "workflows", "bench.yml"), "w") as f:
            f.write(github(jobs))
        with open(os.path.join(repo, ".gitlab-ci.yml"), "w") as f:
            f.write(gitlab(jobs))
        git = ["git", "-C", repo, "-c", "user.email=bench@localhost", "-c", "user.name=bench"]
        if not os.path.isdir(os.path.join(repo, ".git")):
            subprocess.run(["git", "init", "-q", repo], check=True)
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-qm", "bench", "--allow-empty"], check=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    write(sys.argv[1])
