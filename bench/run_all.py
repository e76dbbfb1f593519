"""Run every `bench/*_bench.py` in sequence and join their tables in bench/results/README.md.

    /work/main/.venv/bin/python bench/run_all.py [--quick] [--only peer,fulfillment]

Each script runs with its own default sizes plus the arguments in BUDGET below (or `--quick`
where it offers one); one at a time, because they share the machine's cores with the broker.
One embedded broker serves the whole run (scripts that take `--bootstrap` get it; starting one
per script cost 10-30 s each on a busy machine); between scripts every topic on it is deleted,
so one script's leftovers are neither fetched nor compacted during the next (never on a broker
given with --bootstrap).
A script that writes bench/results/<name>.md contributes that file; for the others, the
Markdown tables of their output are taken (or the tail of the output when there is none). A
failing script is reported in the README and the others still run. The wall time of every
script and the total are printed at the end and written to the README.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit  # the bench dir is not a package

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
# `make bench` must finish in 15 minutes on 2 cores with every benchmark in it: the two older
# comparison benches run on less input and shorter capped windows than their defaults, in two
# interleaved rounds (medians: one round let a single noisy run decide a ratio). The recovery
# bench runs at the 500,000 orders (~95 s on 2 cores), so the restore time is measured,
# not extrapolated from a small run whose rate is mostly start-up cost. The newer scripts'
# defaults are already sized for the budget.
BUDGET = {
    "recovery_bench": ["--orders", "500000"],
    "peer_bench": ["--rounds", "2", "--events", "150000", "--max-seconds", "20"],
    "fulfillment_bench": ["--rounds", "2", "--orders", "4000", "--max-seconds", "25",
                          "--profile", "10"],
    "serde_bench": ["--repeat", "3"],
}
BUDGET_S = 15 * 60


def tables_of(output: str) -> str:
    """The Markdown table lines of a script's output, or its tail as a code block."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    if lines:
        return "\n".join(lines)
    tail = "\n".join(output.strip().splitlines()[-25:])
    return f"```\n{tail}\n```"


def run(script: Path, quick: bool, timeout: float, walls: dict[str, float],
        bootstrap: str) -> str:
    name = script.stem
    argv = [sys.executable, str(script)]
    help_text = subprocess.run([*argv, "--help"], capture_output=True, text=True).stdout
    if quick:
        argv += ["--quick"] if "--quick" in help_text else []
    else:
        argv += BUDGET.get(name, [])
    shown = argv[1:]
    if "--bootstrap" in help_text:
        argv += ["--bootstrap", bootstrap]
    print(f"\n=== {name}: {' '.join(shown)}", flush=True)
    started = time.time()
    log = RESULTS / f"{name}.log"
    try:
        with open(log, "w") as out:
            # Output goes to the log and to our terminal, line by line.
            proc = subprocess.Popen(argv, cwd=BENCH.parent, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                if not line.startswith("%"):  # librdkafka's connection chatter
                    print(line, end="", flush=True)
            code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = -9
    seconds = time.time() - started
    walls[name] = seconds
    print(f"=== {name}: {seconds:.0f}s", flush=True)
    own = RESULTS / f"{name}.md"
    if own.exists() and own.stat().st_mtime >= started:
        body = own.read_text().strip()
        if not body.startswith("#"):
            body = f"## {name}\n\n{body}"
    else:
        body = f"## {name}\n\n{tables_of(log.read_text(errors='replace'))}"
    status = "" if code == 0 else f"\n\n**{name} failed (exit {code}); see {log.name}.**"
    cmd = " ".join(["python", *(str(Path(a).relative_to(BENCH.parent)) if a == str(script)
                                else a for a in shown)])
    return f"{body}{status}\n\n_{cmd}: {seconds:.0f}s_"


def earlier(name: str) -> str:
    """A script left out by --only keeps the section of its last run, marked as such."""
    own, log = RESULTS / f"{name}.md", RESULTS / f"{name}.log"
    if own.exists():
        body = own.read_text().strip()
    elif log.exists():
        body = f"## {name}\n\n{tables_of(log.read_text(errors='replace'))}"
    else:
        return f"## {name}\n\n_not run yet_"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime((own if own.exists() else log)
                                                           .stat().st_mtime))
    return f"{body}\n\n_(from an earlier run, {when})_"


def wall_times(walls: dict[str, float]) -> str:
    """The wall time of each script run now, the total, and the total against the budget."""
    total = sum(walls.values())
    rows = "\n".join(f"| {name} | {seconds:.0f} |" for name, seconds in walls.items())
    verdict = "within" if total <= BUDGET_S else "OVER"
    return (f"| benchmark | wall s |\n|---|---|\n{rows}\n| **total** | **{total:.0f}** "
            f"({total / 60:.1f} min, {verdict} the {BUDGET_S // 60}-minute budget) |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="pass --quick to scripts that have it")
    p.add_argument("--only", help="comma-separated names without _bench (e.g. peer,serde)")
    p.add_argument("--timeout", type=float, default=1200.0, help="per script, seconds")
    p.add_argument("--bootstrap", help="use this broker (default: one embedded broker for the "
                                       "whole run, its topics deleted between scripts)")
    a = p.parse_args()
    scripts = sorted(BENCH.glob("*_bench.py"))
    wanted = {f"{n.strip()}_bench" for n in a.only.split(",")} if a.only else None
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    walls: dict[str, float] = {}
    sections = []
    with benchkit.broker(a.bootstrap) as bootstrap:
        for script in scripts:
            if wanted is not None and script.stem not in wanted:
                sections.append(earlier(script.stem))
                continue
            sections.append(run(script, a.quick, a.timeout, walls, bootstrap))
            if a.bootstrap:  # someone else's broker: its topics are not ours to delete
                continue
            with contextlib.suppress(Exception):  # a broker in trouble: the next script says so
                print(f"(deleted {benchkit.delete_topics(bootstrap)} topics)", flush=True)
    timing = wall_times(walls)
    print(f"\n{timing}", flush=True)
    readme = RESULTS / "README.md"
    readme.write_text(f"# Benchmark results\n\nRun {started} by `python bench/run_all.py"
                      f"{' --quick' if a.quick else ''}`; each figure and ratio below was "
                      "measured side by side within one script's run.\n\n"
                      f"{timing}\n\n" + "\n\n".join(sections) + "\n")
    print(f"\nwrote {readme.relative_to(BENCH.parent)}", flush=True)


if __name__ == "__main__":
    main()
