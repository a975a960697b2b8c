"""The Mork reader: the syntax Thunderbird writes, cuts and resets, escapes and broken input."""

from __future__ import annotations

from parsers.mork import decode_value, read_mork

HEAD = '// <!-- <mdb:mork:z v="1.4"/> -->\n< <(a=c)> // (f=iso-8859-1)\n  (80=ns:s)(81=subject)(82=k:msgs)>\n'


def test_escapes_and_continuations():
    assert decode_value(r"a\)b\\c\$d") == "a)b\\c$d"
    assert decode_value("caf$C3$A9") == "café"
    assert decode_value("long\\\nline") == "longline"
    assert decode_value("$E9t$E9") == "été"  # not UTF-8: Latin-1


def test_rows_atoms_literal_columns_and_updates():
    db = read_mork(HEAD + "<(90=hello)>\n{1:^80 {(k^82:c)(s=9)}\n  [1(^81^90)(plain=x\\)y)]\n"
                   "  [2(^81=two)]}\n@$${1{@\n[1(^81=changed)]\n@$$}1}@\n")
    assert db.rows[("ns:s", "1")] == {"subject": "changed", "plain": "x)y"}
    table = db.tables[("ns:s", "1")]
    assert table.kind == "k:msgs" and list(table.rows) == ["1", "2"] and table.cut == {}


def test_cut_reset_and_aborted_groups():
    text = (HEAD + "{1:^80 {(k^82:c)} [1(^81=a)] [2(^81=b)] [3(^81=c)]}\n"
            "@$${2{@\n{1:^80 -3 }\n@$$}2}@\n"
            "@$${3{@\n{1:^80 - [-1]}\n@$$}~~}@\n")
    db = read_mork(text)
    table = db.tables[("ns:s", "1")]
    assert list(table.rows) == ["1", "2"] and list(table.cut) == ["3"]
    assert db.rows[("ns:s", "3")] == {"subject": "c"}
    assert db.groups == 2 and db.aborted_groups == 1
    reset = read_mork(text + "@$${4{@\n{1:^80 ! [2]}\n@$$}4}@\n")
    table = reset.tables[("ns:s", "1")]
    assert list(table.rows) == ["2"] and sorted(table.cut) == ["1", "3"]


def test_garbage_does_not_raise():
    db = read_mork("// <!-- <mdb:mork:z v=\"1.4\"/> -->\n<<<((( ]]] }}} @$${ \x00\xff zz")
    assert db.rows == {} and db.tables == {}
