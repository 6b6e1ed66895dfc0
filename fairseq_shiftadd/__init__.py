"""fairseq-shiftadd: ShiftAddNAS for machine translation, loaded with ``--user-dir fairseq_shiftadd``.

Importing the package registers its models, tasks and criteria with fairseq and lets fairseq
checkpoints load under torch's weights-only unpickler.
"""
from .checkpoint_compat import allow_fairseq_checkpoints

allow_fairseq_checkpoints()

from . import criterions, models, tasks  # noqa: E402,F401  (registration side effects)
