#!/usr/bin/env python
"""Same as the console command ``shiftadd-cost``."""
import sys

from fairseq_shiftadd.cli.cost import main

sys.exit(main())
