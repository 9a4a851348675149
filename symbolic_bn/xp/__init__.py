"""Array namespaces for users' code: one NumPy-style function, several number systems.

See :mod:`symbolic_bn.xp.namespaces` for the namespaces and their conversion rules.
"""
from .namespaces import *  # noqa: F401,F403 - the public API of the namespaces
from .namespaces import __all__  # noqa: F401
