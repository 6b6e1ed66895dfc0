#!/usr/bin/env python
"""Same as the console command ``shiftadd-export-subnet``."""
import sys

from fairseq_shiftadd.cli.export_subnet import main

sys.exit(main())
