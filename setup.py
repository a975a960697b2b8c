"""Build hook for the optional C speed-up of the mbox parser; everything else is in setup.cfg.

``optional=True``: where no C compiler is available the install still succeeds (with a warning)
and ``parsers.mbox`` uses its pure-Python twins, which give the same records, only slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("parsers._mboxscan", ["parsers/_mboxscan.c"], optional=True)])
