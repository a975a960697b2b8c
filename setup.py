"""Build hook for the optional C speed-ups; everything else is in setup.cfg.

``optional=True``: where no C compiler is available the install still succeeds (with a warning)
and ``parsers.mbox``, ``parsers.evtx_events`` and ``timeline.lines`` use their pure-Python twins,
which give the same records and timeline lines, only slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("parsers._mboxscan", ["parsers/_mboxscan.c"], optional=True),
                   Extension("parsers._evtxread", ["parsers/_evtxread.c"], optional=True),
                   Extension("parsers._evtxshape", ["parsers/_evtxshape.c"], optional=True),
                   Extension("timeline._linefmt", ["timeline/_linefmt.c"], optional=True)])
