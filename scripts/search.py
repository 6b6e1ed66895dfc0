#!/usr/bin/env python
"""Evolutionary search under hardware budgets; the same as the ``shiftadd-search`` command."""
from fairseq_shiftadd.cli.search import main

if __name__ == "__main__":
    main()
