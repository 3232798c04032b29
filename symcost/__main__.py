"""``python -m symcost``: the ``symcost`` command."""

import sys

from .cli import main

sys.exit(main())
