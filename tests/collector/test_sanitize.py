"""Bundle destinations stay inside the bundle whatever the evidence names are."""

from __future__ import annotations

from collector.sanitize import CollisionResolver, sanitize_component, sanitize_location


def test_traversal_and_separators_are_neutralised():
    assert sanitize_location("/../../etc/passwd") == ["%2E%2E", "%2E%2E", "etc", "passwd"]
    assert sanitize_component("a\\b") == "a%5Cb"
    assert sanitize_component("..") == "%2E%2E"


def test_control_characters_reserved_names_and_trailing_dots():
    assert sanitize_component("new\nline\x00") == "new%0Aline%00"
    assert sanitize_component("CON") == "_CON"
    assert sanitize_component("nul.txt") == "_nul.txt"
    assert sanitize_component("name. ") == "name%2E%20"


def test_undecodable_bytes_and_long_names():
    raw = b"mail\xff\xfe".decode("utf-8", "surrogateescape")
    assert sanitize_component(raw) == "mail%FF%FE"
    long = sanitize_component("a" * 4000)
    assert len(long.encode()) <= 180 and "~" in long
    assert sanitize_component("a" * 4000) == long  # deterministic


def test_case_collisions_resolved_deterministically():
    resolver = CollisionResolver()
    assert resolver.claim("files/p1/Inbox") == "files/p1/Inbox"
    assert resolver.claim("files/p1/INBOX") == "files/p1/INBOX~2"
    assert resolver.claim("files/p1/inbox") == "files/p1/inbox~3"
    assert resolver.claim("files/p1/a.pst") == "files/p1/a.pst"
    assert resolver.claim("files/p1/A.PST") == "files/p1/A~2.PST"
