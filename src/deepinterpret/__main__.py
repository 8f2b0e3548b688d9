"""``python -m deepinterpret`` is the ``deepinterpret`` command."""

import sys

from .cli import main

sys.exit(main())
