"""What every console command shares: the plugin registered, and the ``--user-dir`` to hand fairseq."""
from __future__ import annotations

import os

import fairseq_shiftadd  # registers the plugin and the weights-only allow-list

USER_DIR = os.path.dirname(fairseq_shiftadd.__file__)  # what --user-dir is given
