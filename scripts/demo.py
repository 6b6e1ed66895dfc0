#!/usr/bin/env python
"""``make demo``: the whole pipeline on a generated toy corpus (see fairseq_shiftadd/cli/demo.py)."""
import sys

from fairseq_shiftadd.cli.demo import main

sys.exit(main())
