"""`python -m akkoord` is the same as the `akkoord` console script."""

import sys

from akkoord.cli import main

sys.exit(main())
