"""Deletion-evidence rules kept as data (the YAML files beside this module) and their engine."""

from __future__ import annotations

from parsers.rules.engine import Rule, RuleEngine, default_engine

__all__ = ["Rule", "RuleEngine", "default_engine"]
