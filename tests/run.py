"""Run the labdeck test suite the way `make test` and CI do.

pytest exits 5 when it collects nothing. For labdeck that always means the
suite is broken (a bad path, an import-time skip of everything), so it is
reported as a failure with a clear message rather than passed through as an
odd exit code.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    cmd = [sys.executable, "-m", "pytest", *argv]
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc == 5:
        print("labdeck: pytest collected no tests - the suite is misconfigured", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
