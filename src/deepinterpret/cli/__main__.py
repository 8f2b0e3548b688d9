"""``python -m deepinterpret.cli`` is the ``deepinterpret`` command."""

import sys

from . import main

sys.exit(main())
