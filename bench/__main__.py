"""Run every ``bench/bench_*.py`` script; each writes ``<out>/<name>.json``; print a digest."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--out", default="artifacts/bench", help="directory for the JSON files")
    parser.add_argument("only", nargs="*", help="names to run (e.g. data models); all by default")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scripts = sorted(Path(__file__).parent.glob("bench_*.py"))
    failed = []
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        target = out / f"{name}.json"
        print(f"== {name} -> {target}", flush=True)
        rc = subprocess.call([sys.executable, str(script), "--out", str(target)])
        if rc:
            failed.append(name)
        elif target.exists():
            print(json.dumps(json.loads(target.read_text()), indent=2))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
