"""``python -m symcost.cli``: the ``symcost`` command."""

import sys

from . import main

sys.exit(main())
