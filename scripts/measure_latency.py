#!/usr/bin/env python
"""Same as the console command ``shiftadd-measure-latency``."""
import sys

from fairseq_shiftadd.cli.measure_latency import main

sys.exit(main())
