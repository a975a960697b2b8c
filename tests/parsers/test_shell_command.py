"""The command splitter the shell rules rely on: wrappers, chains, here-docs, pipes, variables."""

from __future__ import annotations

from parsers.shell_command import fold_lines, heredoc_delimiters, parse_command_line, resolve_path


def _programs(line: str) -> list[tuple[str, list[str]]]:
    return [(c.program, c.args) for c in parse_command_line(line)]


def test_wrappers_quotes_and_chains():
    assert _programs("sudo -u root \\rm -f \"$MAIL\" && /usr/bin/ls -l | grep x; nohup id &") == [
        ("rm", ["-f", "$MAIL"]), ("ls", ["-l"]), ("grep", ["x"]), ("id", [])]
    command = parse_command_line("env LANG=C timeout 5 nice -n 3 shred -u x")[0]
    assert (command.program, command.wrappers) == ("shred", ["env", "timeout", "nice"])


def test_nested_shells_and_su():
    assert _programs("bash -c 'rm /var/mail/x; ls'")[1:] == [("rm", ["/var/mail/x"]), ("ls", [])]
    assert _programs("su -c 'unlink /var/mail/a' root")[1:] == [("unlink", ["/var/mail/a"])]


def test_broken_quoting_falls_back():
    assert _programs("rm '/var/mail/x") == [("rm", ["/var/mail/x"])]


def test_redirections_and_assignments():
    command = parse_command_line(":> /var/mail/bob 2>/dev/null")[0]
    assert command.program == ":" and command.redirects == [(">", "/var/mail/bob"), (">", "/dev/null")]
    command = parse_command_line("HISTFILE=/dev/null")[0]
    assert command.program == "" and command.assignments == [("HISTFILE", "/dev/null")]
    command = parse_command_line("export HISTSIZE=0 HISTFILESIZE=0")[0]
    assert command.assignments == [("HISTSIZE", "0"), ("HISTFILESIZE", "0")]


def test_stdin_from_pipes_here_strings_and_here_documents():
    commands = parse_command_line("printf 'd 1-5\\nq\\n' | mailx -f box")
    assert commands[1].stdin == "d 1-5\nq\n"
    assert parse_command_line("mail <<< 'd *'")[0].stdin == "d *"
    commands = parse_command_line("mail -f box <<-'END' | cat\n\td *\n\tEND\nls")
    assert commands[0].stdin == "\td *"
    assert [c.program for c in commands] == ["mail", "cat", "ls"]
    commands = parse_command_line("cat <<EOF | sqlite3 db\nDELETE FROM t;\nEOF")
    assert commands[1].stdin == "DELETE FROM t;"
    assert parse_command_line("find /var/mail | xargs -I {} rm {}")[1].piped_args == ["/var/mail"]


def test_multi_line_entries_and_variables():
    assert _programs("for f in /var/mail/a /var/mail/b\ndo\n  rm \"$f\"\ndone") == [
        ("for", ["f", "in", "/var/mail/a", "/var/mail/b"]), ("rm", ["/var/mail/a", "/var/mail/b"])]
    assert _programs("X=/var/mail; rm ${X}/bob") == [("", []), ("rm", ["/var/mail/bob"])]
    assert _programs("ls |\n  wc -l") == [("ls", []), ("wc", ["-l"])]
    assert fold_lines("echo 'a\nb'")[0] == "echo 'a\nb'"


def test_heredoc_delimiters():
    assert heredoc_delimiters("cat <<EOF <<-'X'") == [("EOF", False), ("X", True)]
    assert heredoc_delimiters("echo '<<EOF' <<< x # <<Y") == []


def test_powershell_dialect_keeps_backslashes_and_property_expressions():
    commands = parse_command_line("Remove-Item (Get-PSReadlineOption).HistorySavePath; del C:\\x\\y.pst",
                                  dialect="powershell")
    assert [(c.program, c.args) for c in commands] == [
        ("Remove-Item", ["(Get-PSReadlineOption).HistorySavePath"]), ("del", ["C:\\x\\y.pst"])]


def test_resolve_path():
    assert resolve_path("~/mbox", None, "/home/bob") == "/home/bob/mbox"
    assert resolve_path("~carol/mbox", None, None) == "/home/carol/mbox"
    assert resolve_path("$HOME/Maildir", None, "/home/bob") == "/home/bob/Maildir"
    assert resolve_path("../mail/x", "/var/tmp", None) == "/var/mail/x"


def test_fast_path_tokens_equal_shlex():
    import shlex

    from parsers.shell_command import _tokens

    for line in ["ls -la /var/mail && grep foo bar | wc -l", "a 2>&1 >>x;;b", "cd /tmp;rm -rf x&",
                 "for f in *; do rm $f; done", "echo $(cat x) {a,b} ~/x #c", "x=1 cmd >| f <<< z", "a|&b"]:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        assert _tokens(line) == list(lexer), line
