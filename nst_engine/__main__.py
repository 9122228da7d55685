"""``python -m nst_engine`` is the ``nst`` command."""

import sys

from nst_engine.cli import main

sys.exit(main())
