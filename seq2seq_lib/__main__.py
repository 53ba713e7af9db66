"""``python -m seq2seq_lib``: see :mod:`seq2seq_lib.cli`."""

import sys

from .cli import main

sys.exit(main())
