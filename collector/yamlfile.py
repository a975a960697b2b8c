"""YAML data files (artifact specs, rules): one loader, libyaml's C one where PyYAML has it.

The rule and artifact files are read at every start and in every worker; the pure-Python
loader made that a third of a second.
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """Parse YAML text safely (no arbitrary objects)."""
    return yaml.load(text, Loader=_LOADER)
