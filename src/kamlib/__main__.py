"""``python -m kamlib`` runs the command line."""

from __future__ import annotations

import sys

from kamlib.cli import main

sys.exit(main())
