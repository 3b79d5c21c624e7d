"""``python -m receiver`` behaves as ``remedy``."""

import sys

from receiver.cli import main

sys.exit(main())
