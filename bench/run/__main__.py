"""`python -m bench.run ...`: the benchmark, or (`python -m bench.run stage NAME ...`) a child's stage."""

import sys

from bench.run.cli import main

if __name__ == "__main__":
    sys.exit(main())
