"""fairseq-shiftadd: ShiftAddNAS for machine translation, loaded with ``--user-dir fairseq_shiftadd``.

Importing the package registers its models, tasks and criteria with fairseq, makes fairseq's
checkpoint loads weights-only and its checkpoint writes atomic (a resume survives a kill), and reports the plugin's user errors
(:class:`~fairseq_shiftadd.errors.UserError`) as one line. ``docs/architecture.md`` maps the package.
"""
from .checkpoint_compat import allow_fairseq_checkpoints
from .checkpoint_io import make_checkpoint_writes_atomic
from .errors import install_excepthook

allow_fairseq_checkpoints()
make_checkpoint_writes_atomic()
install_excepthook()

from . import criterions, models, tasks  # noqa: E402,F401  (registration side effects)
