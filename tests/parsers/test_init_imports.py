"""Every parser module is imported by parsers/__init__.py, so every parser is registered."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import parsers
from parsers.base import REGISTRY, Parser

NOT_PARSERS = {"__init__", "base", "record", "engine", "history", "shell_command"}


def test_every_parser_module_is_imported():
    package_dir = Path(parsers.__file__).parent
    tree = ast.parse((package_dir / "__init__.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "parsers" for alias in node.names}
    for path in sorted(package_dir.glob("*.py")):
        module = importlib.import_module(f"parsers.{path.stem}")
        defines_parser = any(isinstance(obj, type) and issubclass(obj, Parser) and obj is not Parser
                             and obj.__module__ == module.__name__ for obj in vars(module).values())
        if defines_parser:
            assert path.stem in imported, f"parsers/{path.name} is not imported in parsers/__init__.py"


def test_registry_names_are_unique_and_described():
    assert REGISTRY
    for name, cls in REGISTRY.items():
        assert cls.NAME == name and cls.DESCRIPTION and cls.DATA_TYPES
