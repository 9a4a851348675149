"""``python -m symbolic_bn.cli``: the ``symbolic-bn`` command."""
import sys

from . import main

sys.exit(main())
