"""fairseq-shiftadd: ShiftAddNAS for machine translation, loaded with ``--user-dir fairseq_shiftadd``.

Importing the package registers its models, tasks and criteria with fairseq, makes fairseq's
checkpoint loads weights-only and its checkpoint writes atomic (a resume survives a kill), reports
the plugin's user errors (:class:`~fairseq_shiftadd.errors.UserError`) as one line, makes fairseq's
multi-process training right for supernets and CPU ranks (``docs/distributed.md``), and silences
the known-harmless messages of fairseq, hydra and torch (:mod:`~fairseq_shiftadd.quiet`).
``docs/architecture.md`` maps the package.
"""
from .quiet import silence_known_noise

silence_known_noise()  # before fairseq is first imported: its import logs one of the messages

from . import distributed  # noqa: E402
from .checkpoint_compat import allow_fairseq_checkpoints  # noqa: E402
from .checkpoint_io import make_checkpoint_writes_atomic  # noqa: E402
from .errors import install_excepthook  # noqa: E402

allow_fairseq_checkpoints()
make_checkpoint_writes_atomic()
install_excepthook()
distributed.install()

from . import criterions, models, tasks  # noqa: E402,F401  (registration side effects)
