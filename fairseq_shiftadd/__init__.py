"""fairseq-shiftadd: ShiftAddNAS for machine translation, loaded with ``--user-dir fairseq_shiftadd``.

Importing the package registers its models, tasks and criteria with fairseq, lets fairseq
checkpoints load under torch's weights-only unpickler, and turns the plugin's user-input errors
into one-line messages.
"""
from . import user_errors
from .checkpoint_compat import allow_fairseq_checkpoints

allow_fairseq_checkpoints()
user_errors.install()

from . import criterions, models, tasks  # noqa: E402,F401  (registration side effects)
