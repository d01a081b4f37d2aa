"""`python -m poolattn ...` (and `accelerate launch -m poolattn train ...`)."""

import sys

from poolattn.cli import main

sys.exit(main())
