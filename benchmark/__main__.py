"""``python -m benchmark`` is the ``metarl-bench`` command."""

import sys

from benchmark.cli import main

sys.exit(main())
