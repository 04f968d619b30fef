#!/usr/bin/env python3
"""make conformance: the OCI runtime-tools validation programs, ocirun side by side with runc.

Runs every validation/<name>/<name>.t (built by scripts/conformance-build.sh) from the
suite's source root, one program at a time (the cgroup programs use fixed cgroup paths),
each with a timeout, each runtime through a wrapper that gives it a private state root, each
run in a private temp dir (TMPDIR, where the programs make their bundles); after each run the
host is put back (conformance_host.py) and anything left is reported. One table at the end.

Scoring, from the programs' Go source (validation/*/*.go, validation/util):
  - a program passes when it exits 0, prints a TAP plan, no `not ok` line and no free-standing
    error block. The hook programs (hooks, prestart*, poststart*, poststop*) and state report a
    failure only as a YAML block with an "error" key, under plan 1..0; a block that follows a
    test line is that test's diagnostic (the `ok` of a rightly refused create has one);
  - process_capabilities_fail and process_rlimits_fail print nothing and exit 0 when the
    runtime refuses the bad config (exit 1 when it runs it). They would pass for any error at
    all, so they pass only if the program reports that the runtime's create or start failed.
Exit status 1 when a program that runc passes fails for ocirun (twice: a failure is retried
once, the suite has races) and is not in tests/conformance/known_failures.txt, when a program
in that list now passes (so the list cannot go stale), or when something stayed on the host.
Each run's output: build/conformance/logs/<runtime>/<program>.log.
"""

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conformance_host as host  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
KNOWN_FAILURES = REPO / "tests/conformance/known_failures.txt"
LOG_DIR = REPO / "build/conformance/logs"
LOCK_FILE = "/run/lock/ocirun-conformance.lock"
REFUSAL_PROGRAMS = {"process_capabilities_fail", "process_rlimits_fail"}
TEST_LINE = re.compile(r"^(not )?ok\b")
PLAN_LINE = re.compile(r"^1\.\.\d+\s*$")


# --- scoring ------------------------------------------------------------------------------------


def yaml_blocks(lines):
    """(attached, index of "  ---", fields) for each tap-go YAML block ("  ---" ... "  ...").
    tap-go writes the fields as indented JSON. A block is attached when a test line came
    after the previous block: a test's description may run on over lines of its own."""
    blocks, i, test_seen = [], 0, False
    while i < len(lines):
        if lines[i] == "  ---":
            j = i + 1
            while j < len(lines) and lines[j] != "  ...":
                j += 1
            text = "\n".join(lines[i + 1 : j])
            try:
                fields = json.loads(text)
            except ValueError:
                fields = {"error": text.strip()} if '"error"' in text else {}
            blocks.append((test_seen, i, fields if isinstance(fields, dict) else {}))
            test_seen, i = False, j
        elif TEST_LINE.match(lines[i]):
            test_seen = True
        i += 1
    return blocks


def short(text, width=110):
    text = re.sub(r"\s*Refer to: \S+", "", " ".join(str(text).split()))
    return text if len(text) <= width else text[: width - 3] + "..."


def stderr_reason(stderr):
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return " | ".join(lines[-3:]) if lines else "(no output)"


def score(name, rc, stdout, stderr):
    """(passed, reason) for one run of program `name`; rc None means it timed out."""
    if rc is None:
        return False, "timed out"
    if name in REFUSAL_PROGRAMS:
        refused = re.search(r"failed to (create|start) the container", stderr)
        if rc == 0 and refused and not stdout.strip():
            return True, "refused: " + stderr_reason(stderr[refused.end() :])
        if rc == 0:
            return False, "exited 0 but the runtime did not refuse: " + stderr_reason(stderr)
        return False, "accepted the bad config: " + stderr_reason(stderr)
    lines = stdout.splitlines()
    blocks = yaml_blocks(lines)
    for attached, _, fields in blocks:
        if "error" in fields and not attached:
            return False, f"error: {fields['error']}"
    for idx, line in enumerate(lines):
        if line.startswith("not ok"):
            detail = ""
            nxt = next((b for b in blocks if b[1] > idx), None)
            prev = next((b for b in reversed(blocks) if b[1] < idx), None)
            inner = (
                [
                    ln
                    for ln in str(prev[2].get("stdout", "")).splitlines()
                    if ln.startswith("not ok")
                ]
                if prev
                else []
            )
            if inner:  # RuntimeInsideValidate's inner TAP
                detail = inner[0]
            elif nxt and not any(TEST_LINE.match(ln) for ln in lines[idx + 1 : nxt[1]]):
                detail = nxt[2].get("error") or nxt[2].get("stderr") or ""
            elif idx + 1 < len(lines) and lines[idx + 1].startswith("# "):
                detail = lines[idx + 1][2:]  # t.Diagnostic after the test line
            return False, line + (f" ({detail})" if detail else "")
    if rc != 0:
        return False, f"exit {rc}: " + stderr_reason(stderr)
    if not any(PLAN_LINE.match(ln) for ln in lines):
        return False, "no TAP plan: " + stderr_reason(stderr)
    skips = sum(1 for ln in lines if TEST_LINE.match(ln) and "# SKIP" in ln)
    return True, f"{skips} skipped" if skips else ""


# --- one program, one runtime --------------------------------------------------------------------


class Run:
    """One program against one runtime, in a private temp dir: wrapper, state root, TMPDIR."""

    def __init__(self, name, rt_name, rt_path, src, timeout, debug):
        self.name, self.rt_name, self.src, self.timeout = name, rt_name, src, timeout
        self.tmp = Path(tempfile.mkdtemp(prefix=f"ocirun-conformance-{rt_name}-"))
        self.tmp.chmod(0o711)  # as /tmp: a user-namespaced container must get to its bundle
        self.root, self.tmpdir = self.tmp / "state", self.tmp / "tmp"
        self.root.mkdir()
        self.tmpdir.mkdir()
        self.calls = self.tmp / "calls.log"
        self.wrapper = self.tmp / rt_name
        extra = f' --debug --log "{LOG_DIR}/{rt_name}/{name}.runtime.log"' if debug else ""
        self.wrapper.write_text(
            "#!/bin/sh\n"
            f'printf "%s\\n" "$*" >> "{self.calls}"\n'
            f'exec "{rt_path}" --root "{self.root}"{extra} "$@"\n'
        )
        self.wrapper.chmod(0o755)

    def run(self):
        """(exit status or None on timeout, stdout, stderr)"""
        env = dict(os.environ, RUNTIME=str(self.wrapper), TMPDIR=str(self.tmpdir))
        prog = Path(self.src, "validation", self.name, self.name + ".t")
        start = time.monotonic()
        proc = subprocess.Popen(
            [str(prog)],
            cwd=self.src,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
            errors="replace",
        )
        self.sid = proc.pid
        try:
            out, err = proc.communicate(timeout=self.timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            host.kill_pids(host.session_pids(self.sid))
            out, err = proc.communicate()
            rc = None
        self.seconds = time.monotonic() - start
        return rc, out, err

    def containers(self):
        # ocirun keeps caches in dot-directories of its root; containers are the rest
        return sorted(d for d in os.listdir(self.root) if not d.startswith("."))

    def cleanup(self, keep_cgroups):
        """Put the host back. Returns (what had been left and was removed, what remains)."""
        ids = set(self.containers())
        if self.calls.exists():
            for line in self.calls.read_text().splitlines():
                args = line.split()
                if len(args) > 1 and args[0] in ("create", "run"):
                    ids.add(args[-1])
        cleaned = []
        left = self.containers()
        for cid in left:
            subprocess.run(
                [str(self.wrapper), "delete", "--force", cid],
                timeout=30,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        if left:
            cleaned.append(f"{len(left)} container(s) in the state root")
        procs = set(host.session_pids(self.sid)) | set(host.pids_in_cgroups(ids | {"cgrouptest"}))
        if procs:
            host.kill_pids(procs)
            cleaned.append(f"{len(procs)} process(es)")
        n = host.remove_cgroups([d for d in host.test_cgroups(ids) if d not in keep_cgroups])
        if n:
            cleaned.append(f"{n} cgroup dir(s)")
        n = host.unmount_all(str(self.tmp))
        if n:
            cleaned.append(f"{n} mount(s)")
        remains = []
        if host.mounts_under(str(self.tmp)):
            remains.append(f"mounts under {self.tmp} (left in place)")
        else:
            subprocess.run(["rm", "-rf", "--one-file-system", str(self.tmp)])
        stuck = [d for d in host.test_cgroups(ids) if d not in keep_cgroups]
        if stuck:
            remains.append("cgroups " + " ".join(map(str, stuck)))
        survivors = host.session_pids(self.sid) + host.pids_in_cgroups(ids | {"cgrouptest"})
        if survivors:
            remains.append(f"processes {sorted(set(survivors))}")
        return cleaned, remains


# --- the suite ----------------------------------------------------------------------------------


def load_known(path):
    """{program: reason} from lines "program  reason"; # starts a comment line."""
    known = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, reason = line.strip().partition(" ")
            known[name] = reason.strip()
    return known


def build():
    """The built suite's source root, or None (after printing why) when it is skipped."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts/conformance-build.sh")], stdout=subprocess.PIPE, text=True
    )
    out = proc.stdout.strip().splitlines()
    if proc.returncode == 2:
        print("conformance: " + (out[-1] if out else "skipped"))
        return None
    if proc.returncode != 0 or not out:
        sys.exit("conformance: FAILED to build the validation suite")
    return out[-1]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ocirun", default=str(REPO / ".venv/bin/ocirun"), help="runtime under test")
    ap.add_argument(
        "--runc",
        default=shutil.which("runc") or "",
        help="reference runtime ('' to run ocirun alone)",
    )
    ap.add_argument(
        "--runtime",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another runtime for the table only (e.g. crun=/path/to/wrapper)",
    )
    ap.add_argument("--only", help="comma-separated program names")
    ap.add_argument("--timeout", type=float, default=90, help="seconds per program (90)")
    ap.add_argument("--src", help="an already built runtime-tools source root")
    ap.add_argument("--known", type=Path, default=KNOWN_FAILURES)
    ap.add_argument("--debug", action="store_true", help="runtimes log (--debug) into the logs")
    ap.add_argument("-v", "--verbose", action="store_true", help="print failing runs' output")
    return ap.parse_args()


def main():
    args = parse_args()
    runtimes = {"ocirun": args.ocirun}
    if args.runc:
        runtimes["runc"] = args.runc
    runtimes.update(r.split("=", 1) for r in args.runtime)
    runtimes = {n: os.path.abspath(p) for n, p in runtimes.items()}
    for n, p in runtimes.items():
        if not os.access(p, os.X_OK):
            sys.exit(f"conformance: runtime {n} not found at {p} (make build?)")
    if os.geteuid() != 0:
        print("conformance: skipped: needs root (containers, cgroups, mounts)")
        return 0
    src = args.src or build()
    if src is None:
        return 0
    names = sorted(
        p.name for p in Path(src, "validation").iterdir() if (p / f"{p.name}.t").is_file()
    )
    if args.only:
        unknown = set(args.only.split(",")) - set(names)
        if unknown:
            sys.exit(f"conformance: no such program(s): {' '.join(sorted(unknown))}")
        names = args.only.split(",")
    known = load_known(args.known)

    os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
    lock = open(LOCK_FILE, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("conformance: waiting for another run of the suite (fixed cgroup paths)", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    preexisting = set(host.test_cgroups(set()))
    if preexisting:
        print(
            "conformance: warning: these cgroups were there before and are left alone: "
            + " ".join(map(str, preexisting))
        )

    shutil.rmtree(LOG_DIR, ignore_errors=True)
    for n in runtimes:
        (LOG_DIR / n).mkdir(parents=True)
    print(
        f"conformance: {len(names)} programs x {', '.join(runtimes)}, one at a time "
        f"(timeout {args.timeout:g} s; logs in {LOG_DIR.relative_to(REPO)}/)",
        flush=True,
    )

    results, cleaned_up, remaining = {}, [], []
    started = time.monotonic()

    def run_one(name, rt_name, log_name):
        run = Run(name, rt_name, runtimes[rt_name], src, args.timeout, args.debug)
        try:
            rc, out, err = run.run()
        finally:
            cleaned, remains = run.cleanup(preexisting)
        passed, reason = score(name, rc, out, err)
        (LOG_DIR / rt_name / log_name).write_text(
            f"exit: {rc}  ({run.seconds:.1f} s)\n--- stdout\n{out}\n--- stderr\n{err}\n"
        )
        if cleaned:
            cleaned_up.append(f"{name} [{rt_name}]: {', '.join(cleaned)}")
        remaining.extend(f"{name} [{rt_name}]: {r}" for r in remains)
        print(
            f"  {name:<32} {rt_name:<7} {'pass' if passed else 'FAIL':<5} {run.seconds:5.1f}s"
            f"  {short(reason, 70)}",
            flush=True,
        )
        if args.verbose and not passed:
            print(f"--- stdout\n{out}\n--- stderr\n{err}\n---", flush=True)
        return passed, reason

    for name in names:
        for rt_name in runtimes:
            results[name, rt_name] = run_one(name, rt_name, f"{name}.log")
        oci_ok, first = results[name, "ocirun"]
        # The suite has races of its own (killsig can signal the shell before it has set its
        # trap): a failure that would count against ocirun must happen twice.
        if not oci_ok and name not in known and results.get((name, "runc"), (False,))[0]:
            passed, reason = run_one(name, "ocirun", f"{name}.retry.log")
            results[name, "ocirun"] = (
                (True, f"flaky: passed on a retry; first: {first}") if passed else (False, reason)
            )
    return report(
        names,
        list(runtimes),
        results,
        known,
        cleaned_up,
        remaining,
        time.monotonic() - started,
        args.known,
    )


def report(names, rts, results, known, cleaned_up, remaining, seconds, known_path):
    width = max(len(n) for n in names)
    print("\n" + f"{'program':<{width}}  " + "".join(f"{r:<8}" for r in rts) + "reason")
    regressions, stale = [], []
    for name in names:
        cells = "".join(f"{'pass' if results[name, r][0] else 'FAIL':<8}" for r in rts)
        oci_ok, reason = results[name, "ocirun"]
        ref_ok = "runc" in rts and results[name, "runc"][0]  # no runc: nothing to compare
        if oci_ok:
            failing = [r for r in rts if not results[name, r][0]]
            if failing:
                reason = f"{failing[0]}: {results[name, failing[0]][1]}"
        if oci_ok and name in known:
            stale.append(name)
            reason = "NOW PASSES, remove it from the known failures; " + reason
        elif not oci_ok and name in known:
            reason = "known: " + reason
        elif not oci_ok and ref_ok:
            regressions.append(name)
            reason = "NEW FAILURE (runc passes): " + reason
        print(f"{name:<{width}}  {cells}{short(reason)}")
    if cleaned_up:
        print("\nleft behind by the programs or runtimes, and removed:")
        print("\n".join("  " + line for line in cleaned_up))
    if remaining:
        print("\nSTILL ON THE HOST after the cleanup:")
        print("\n".join("  " + line for line in remaining))
    if "runc" not in rts:
        print("\nnote: runc was not run: ocirun's failures are not compared with runc's")

    problems = []
    if regressions:
        problems.append(f"{len(regressions)} new ocirun failure(s): {' '.join(regressions)}")
    if stale:
        problems.append(f"now passing, remove from {known_path.name}: {' '.join(stale)}")
    if remaining:
        problems.append("left things on the host")
    totals = ", ".join(f"{r} {sum(results[n, r][0] for n in names)}/{len(names)}" for r in rts)
    print(
        f"\nconformance: programs passing: {totals}; {seconds:.0f} s: "
        + ("; ".join(problems) if problems else "OK")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
