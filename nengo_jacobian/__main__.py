"""``python -m nengo_jacobian``: the command line (see `nengo_jacobian.cli`)."""

import sys

from nengo_jacobian.cli import main

if __name__ == "__main__":
    sys.exit(main())
