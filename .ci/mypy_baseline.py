"""Run mypy (setup.cfg [mypy]) and fail on any type error that is not in .ci/mypy_baseline.txt.

The baseline holds the errors the tree had when mypy joined CI, without line numbers (they move with
every edit). Fix one and delete its line; `python .ci/mypy_baseline.py --update` rewrites the file from
mypy's output, for a reviewer to read in the diff: the baseline only shrinks.
"""

import collections
import re
import subprocess
import sys
from pathlib import Path

BASELINE = Path(__file__).with_name("mypy_baseline.txt")
ERROR = re.compile(r"^(?P<path>[^:\s]+):\d+(?::\d+)?: (?P<rest>error: .*)$")


def current_errors() -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], capture_output=True, text=True)
    errors = sorted(f"{m['path']}: {m['rest']}" for line in proc.stdout.splitlines() if (m := ERROR.match(line)))
    # mypy's own verdicts: 0 (clean) or 1 with its error lines; anything else (2: a bad config, a crash; 1 without
    # an error line: mypy not installed) is not a report
    if proc.returncode != (1 if errors else 0):
        sys.exit(f"mypy failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return errors


def main() -> int:
    errors = current_errors()
    if "--update" in sys.argv[1:]:
        BASELINE.write_text("".join(f"{e}\n" for e in errors))
        print(f"{BASELINE}: {len(errors)} errors")
        return 0
    known = collections.Counter(line for line in BASELINE.read_text().splitlines() if line.strip())
    found = collections.Counter(errors)
    new, fixed = found - known, known - found
    if fixed:
        print(f"{fixed.total()} baseline errors are gone; delete them from {BASELINE.name}:")
        print("".join(f"  {e}\n" for e in sorted(fixed.elements())), end="")
    if new:
        print(f"{new.total()} new type errors (run mypy for their lines):")
        print("".join(f"  {e}\n" for e in sorted(new.elements())), end="")
        return 1
    print(f"mypy: no new type errors ({found.total()} in the baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
