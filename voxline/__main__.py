"""`python -m voxline` is the `voxline` command."""

import sys

from voxline.cli import main

sys.exit(main())
