"""fairseq-shiftadd: ShiftAddNAS for machine translation, loaded with ``--user-dir fairseq_shiftadd``.

Importing the package registers its models, tasks and criteria with fairseq, lets fairseq
checkpoints load under torch's weights-only unpickler, and reports the plugin's user errors
(:class:`~fairseq_shiftadd.errors.UserError`) as one line. ``docs/architecture.md`` maps the package.
"""
from .checkpoint_compat import allow_fairseq_checkpoints
from .errors import install_excepthook

allow_fairseq_checkpoints()
install_excepthook()

from . import criterions, models, tasks  # noqa: E402,F401  (registration side effects)
