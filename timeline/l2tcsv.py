"""plaso's l2tcsv: 17 fixed columns, MACB letters, ``MM/DD/YYYY`` and ``HH:MM:SS``.

Like plaso, rows of one record that share a timestamp are written as one line whose MACB column
combines their letters and whose ``type`` joins their descriptions with ``; ``; delimiters inside
values become spaces. Unlike plaso, line breaks inside values become spaces too, so that every
event stays on one line for grep and spreadsheet users, formula-like cells are neutralised and
cells holding quotes are quoted (see :func:`field`). :class:`timeline.lines.LineFormatter` puts the
fields together into lines.
"""

from __future__ import annotations

import re
from typing import Any

HEADER = ("date", "time", "timezone", "MACB", "source", "sourcetype", "type", "user", "host",
          "short", "desc", "version", "filename", "inode", "notes", "format", "extra")
#: data_type prefix -> (plaso SOURCE_SHORT, SOURCE_LONG)
SOURCES = (
    ("fs:stat", "FILE", "File stat"),
    ("shell:bash", "LOG", "Bash History"),
    ("shell:zsh", "HIST", "Zsh Extended History"),
    ("shell:fish", "LOG", "Fish History"),
    ("shell:powershell", "LOG", "PowerShell PSReadLine History"),
    ("shell:", "LOG", "Shell History"),
    ("mail:outlook", "PST", "Outlook PST/OST"),
    ("mail:apple_mail", "EMAIL", "Apple Mail"),
    ("mail:windows_mail", "EMAIL", "Windows Mail"),
    ("mail:mbox", "EMAIL", "Mbox"),
    ("mail:maildir", "EMAIL", "Maildir"),
    ("mail:dovecot", "EMAIL", "Dovecot uidlist"),
    ("mail:thunderbird", "EMAIL", "Thunderbird Mail"),
    ("mail:", "EMAIL", "Mailbox"),
    ("windows:evtx", "EVT", "WinEVTX"),
    ("windows:prefetch", "LOG", "WinPrefetch"),
    ("windows:exchange:message_tracking", "LOG", "Exchange Message Tracking Log"),
    ("windows:exchange:cmdlet", "LOG", "Exchange Cmdlet Log"),
    ("windows:exchange:admin_audit", "LOG", "Exchange Admin Audit Log"),
    ("m365:ual", "LOG", "M365 Unified Audit Log"),
)
_MACB = (("M", ("mtime", "Content Modification Time")),
         ("A", ("atime", "Last Access Time")),
         ("C", ("ctime", "Metadata Modification Time")),
         ("B", ("crtime", "Creation Time")))
_LINE_BREAKS = re.compile(r"[\r\n]+")


#: Our descriptions of times that plaso records under its own names: the MACB letters follow
#: plaso's (a shell history time is its "Content Modification Time", an event log's TimeCreated
#: its "Creation Time"), while the ``type`` column keeps our more precise wording.
PLASO_EQUIVALENTS = {
    "Command Executed Time": "Content Modification Time",
    "Command Start Time": "Content Modification Time",
    "Event Time": "Creation Time",
    "Record Written Time": "Content Modification Time",
    # parsers/mft.py names the $FILE_NAME copies of the NTFS times apart from $STANDARD_INFORMATION
    "Creation Time ($FILE_NAME)": "Creation Time",
    "Content Modification Time ($FILE_NAME)": "Content Modification Time",
    "Last Access Time ($FILE_NAME)": "Last Access Time",
    "Metadata Modification Time ($FILE_NAME)": "Metadata Modification Time",
}


def macb(descriptions: list[str]) -> str:
    """plaso's MACB representation for a group of timestamp descriptions."""
    names_used = [PLASO_EQUIVALENTS.get(d, d) for d in descriptions]
    return "".join(letter if any(d in names for d in names_used) else "." for letter, names in _MACB)


def source_of(data_type: str) -> tuple[str, str]:
    """(short, long) source names for a data type, as plaso's formatters name them."""
    for prefix, short, long in SOURCES:
        if data_type.startswith(prefix):
            return short, long
    return "LOG", data_type


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def field(value: Any) -> str:
    """One l2tcsv cell, safe for spreadsheets and CSV readers.

    Policy (this is the CSV meant for spreadsheets; the Timesketch files keep raw values):
    commas and line breaks become spaces, as plaso does for commas; a cell that a spreadsheet
    would evaluate as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or CR, other than
    the ``-`` placeholder for "no value") gets a leading ``'``; a cell holding ``"`` is quoted,
    with inner quotes doubled, so that a stray quote can never swallow the rest of the line.
    """
    text = "-" if value is None or value == "" else str(value)
    if text.startswith(_FORMULA_START) and text != "-":
        text = "'" + text
    if "\n" in text or "\r" in text:
        text = _LINE_BREAKS.sub(" ", text)
    text = text.replace(",", " ")
    if '"' in text:
        text = '"' + text.replace('"', '""') + '"'
    return text


def header_line() -> str:
    """The 17-column header (no line terminator)."""
    return ",".join(HEADER)
