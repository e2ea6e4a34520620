"""``python -m rates`` is the ``rates`` command."""

import sys

from rates.cli import main

sys.exit(main())
