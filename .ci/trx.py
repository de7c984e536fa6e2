#!/usr/bin/env python3
"""Reads the TRX files `dotnet test --logger trx` wrote into one folder (one file per test project) and checks them.

    trx.py [--projects N] [--allow-skip PREFIX]... [--label TEXT] DIR

Prints every skipped test with its reason, then, as the last line of standard output, the totals of that folder:
    P F S
(passed, failed, skipped; a theory's cases count one each, as the TRX lists them). Each test counts once per folder.

Exits 1 (saying why on standard error) when:
  - the folder holds no TRX file, or --projects is given and the folder does not hold exactly that many;
  - with --projects, a TRX records no executed test (a project that discovered no tests still writes one); without it,
    when no TRX in the folder records an executed test (a filtered rerun may leave a project with nothing to run);
  - a skipped test's reason starts with none of the --allow-skip prefixes (with no --allow-skip, every skip is allowed).
Failed tests do not change the exit code: the caller has dotnet test's own status and the F count.
"""
import argparse
import glob
import os
import sys
import xml.etree.ElementTree as ET

NS = "{http://microsoft.com/schemas/VisualStudio/TeamTest/2010}"


def text(element, path):
    found = element.find(path)
    return (found.text or "").strip() if found is not None else ""


def skip_reason(result):
    """xunit's skip reason: TRX writers put it in Output/ErrorInfo/Message or Output/StdOut, depending on the version."""
    for path in (f"{NS}Output/{NS}ErrorInfo/{NS}Message", f"{NS}Output/{NS}StdOut", f"{NS}Output/{NS}TextMessages/{NS}Message"):
        reason = text(result, path)
        if reason:
            return " ".join(reason.split())
    return ""


def read(path):
    """(project, passed, failed, skipped [(test, reason)], executed) of one TRX file."""
    root = ET.parse(path).getroot()
    storages = {os.path.basename(u.get("storage", "")) for u in root.iter(f"{NS}UnitTest")}
    project = ", ".join(sorted(s for s in storages if s)) or os.path.basename(path)
    passed = failed = 0
    skipped = []
    for r in root.iter(f"{NS}UnitTestResult"):
        outcome = r.get("outcome", "")
        if outcome == "Passed":
            passed += 1
        elif outcome == "NotExecuted":
            skipped.append((r.get("testName", "?"), skip_reason(r)))
        else:  # Failed, Error, Timeout, Aborted, Inconclusive...: not a pass
            failed += 1
    return project, passed, failed, skipped, passed + failed


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--projects", type=int, help="the number of TRX files (test projects) the folder must hold")
    ap.add_argument("--allow-skip", action="append", default=None, metavar="PREFIX",
                    help="a skip reason that may remain (prefix match); repeatable")
    ap.add_argument("--label", default="tests", help="names the run in messages")
    ap.add_argument("dir")
    args = ap.parse_args(argv)

    files = sorted(glob.glob(os.path.join(args.dir, "*.trx")))
    problems = []
    if not files:
        problems.append(f"no TRX file in {args.dir} (did the build fail?)")
    elif args.projects is not None and len(files) != args.projects:
        problems.append(f"{len(files)} TRX files for {args.projects} test projects: a project wrote no results")

    passed = failed = 0
    skips = []
    for f in files:
        try:
            project, p, fl, sk, executed = read(f)
        except ET.ParseError as e:
            problems.append(f"{os.path.basename(f)}: not a readable TRX ({e})")
            continue
        print(f"{args.label}: {project}: {p} passed, {fl} failed, {len(sk)} skipped", file=sys.stderr)
        if executed == 0 and args.projects is not None:
            problems.append(f"{project}: no test executed ({os.path.basename(f)})")
        passed += p
        failed += fl
        skips.extend(sk)

    if files and passed + failed == 0:
        problems.append("no test executed")
    if skips:
        print(f"{args.label}: skipped tests and their reasons:")
    for name, reason in skips:
        allowed = args.allow_skip is None or any(reason.startswith(a) for a in args.allow_skip)
        print(f"  SKIP {name}: {reason or '(no reason given)'}{'' if allowed else '   <- not allowed in CI'}")
        if not allowed:
            problems.append(f"skip not allowed: {name}: {reason or '(no reason given)'}")

    for p in problems:
        print(f"CI ({args.label}): {p}", file=sys.stderr)
    print(f"{passed} {failed} {len(skips)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
