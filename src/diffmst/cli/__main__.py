"""``python -m diffmst.cli``: the ``diffmst`` command."""

import sys

from . import main

sys.exit(main())
