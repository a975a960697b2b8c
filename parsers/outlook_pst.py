"""Outlook PST/OST/NST through libpff (pypff): every folder, every item, orphans and recovered items.

Why this shape: clearing mail in Outlook moves items to Deleted Items, then (Exchange/OST) to the
Recoverable Items tree, then purges them. Each stage leaves traces the examiner must see as rows:
items still sitting in Deleted Items or Recoverable Items (tagged by attribute so the rule engine
flags them; under Recoverable Items, ``recoverable_items_folder`` says which subfolder, because
Deletions means soft-deleted and Purges means purged while Audits or Versions mean neither), items
the PST's descriptor index still holds but no folder references (libpff's *orphan* items) and items
libpff recovers from freed blocks. Both of the latter are emitted with ``recovered=True``. The
libpff-python wheel binds no item recovery, so where it lacks ``recover_items`` the recovered items
come from libpff's own exporter, ``pffexport -m recovered`` (Debian ``pff-tools``), run on the file
into a private temporary directory; its entries that only repeat an item still present (old B-tree
pages) are stale copies, not deleted mail, and are counted rather than emitted.

Deleted Items is found through the message store's ``PR_IPM_WASTEBASKET_ENTRYID`` (so a localised
folder name still works), with the English names as a fallback. Properties are read from the raw
MAPI record set rather than pypff's convenience getters because some item types (free/busy, views)
have no typed pypff object but still carry subject, class and times.
"""

from __future__ import annotations

import calendar
import dataclasses
import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, BinaryIO

from collector.timeutil import FILETIME_UNIX_OFFSET, from_filetime
from parsers.base import ParseContext, Parser
from parsers.record import Record

# MAPI property tags (MS-OXPROPS): only the identifier part, pypff reports the type separately.
PR_MESSAGE_CLASS = 0x001A
PR_SUBJECT = 0x0037
PR_CLIENT_SUBMIT_TIME = 0x0039
#: pypff raises MemoryError ("unable to create ... object") when an item of a damaged file
#: cannot be built: that is a damaged item, not an exhausted heap.
_PFF_ERRORS = (OSError, MemoryError)


def _name(folder: Any) -> str | None:
    """A folder's display name, or None when its property table is unreadable."""
    try:
        return folder.name
    except _PFF_ERRORS:
        return None


PR_SENT_REPRESENTING_NAME = 0x0042
PR_SENDER_NAME = 0x0C1A
PR_SENDER_EMAIL_ADDRESS = 0x0C1F
PR_DISPLAY_CC = 0x0E03
PR_DISPLAY_TO = 0x0E04
PR_MESSAGE_DELIVERY_TIME = 0x0E06
PR_MESSAGE_FLAGS = 0x0E07
PR_MESSAGE_SIZE = 0x0E08
PR_INTERNET_MESSAGE_ID = 0x1035
PR_DISPLAY_NAME = 0x3001
PR_EMAIL_ADDRESS = 0x3003
PR_CREATION_TIME = 0x3007
PR_LAST_MODIFICATION_TIME = 0x3008
PR_CONTENT_COUNT = 0x3602
PR_CONTENT_UNREAD = 0x3603
PR_CONTAINER_CLASS = 0x3613
PR_IPM_WASTEBASKET_ENTRYID = 0x35E3
PR_SMTP_ADDRESS = 0x39FE
PR_RECIPIENT_TYPE = 0x0C15
PR_DELETED_ON = 0x668F

MSGFLAG_READ = 0x01
NID_TYPE_MASK = 0x1F
NID_TYPE_NORMAL_MESSAGE = 0x04

RECIPIENT_TYPES = {0: "originator", 1: "to", 2: "cc", 3: "bcc"}
DELETED_ITEMS_NAMES = {"deleted items", "deleted messages"}
RECOVERABLE_ITEMS_NAME = "recoverable items"
#: The Exchange dumpster's subfolders (Microsoft Learn, "Recoverable Items folder in Exchange
#: Online"): Deletions holds soft-deleted items (Deleted Items emptied, or Shift+Delete), Purges the
#: hard-deleted ones kept by single item recovery or a hold, DiscoveryHolds hard-deleted items that
#: match an eDiscovery hold query, SubstrateHolds hard-deleted items kept by a retention policy,
#: Versions the originals of items edited while on hold, Audits and Calendar Logging system logs.
RECOVERABLE_SUBFOLDERS = {name.lower(): name for name in (
    "Deletions", "Purges", "DiscoveryHolds", "SubstrateHolds", "Versions", "Audits", "Calendar Logging")}
_STRING_TYPES = (0x001E, 0x001F)
_INTEGER_TYPES = (0x0002, 0x0003, 0x0014)

TIME_PROPS = (("Client Submit Time", PR_CLIENT_SUBMIT_TIME),
              ("Delivery Time", PR_MESSAGE_DELIVERY_TIME),
              ("Creation Time", PR_CREATION_TIME),
              ("Modification Time", PR_LAST_MODIFICATION_TIME),
              ("Deletion Time", PR_DELETED_ON))

log = logging.getLogger("inboxtrail.parse")
#: pffexport's OutlookHeaders.txt labels -> the timestamp descriptions of live items.
PFFEXPORT_TIMES = {"client submit time": "Client Submit Time", "delivery time": "Delivery Time",
                   "creation time": "Creation Time", "modification time": "Modification Time"}
#: pffexport's time format: ``Jun 21, 2011 23:46:39.234000000 UTC`` (libfdatetime, ctime style).
_PFF_TIME = re.compile(r"([A-Z][a-z]{2}) (\d{2}), (\d{4}) (\d{2}):(\d{2}):(\d{2})\.(\d{9}) UTC$")
_MONTHS = {name: index for index, name in enumerate(calendar.month_abbr) if name}
#: An exported item folder: its type and pffexport's 1-based recovered item number.
_ITEM_DIR = re.compile(r"([A-Za-z]+)(\d{5,})$")
#: Lines of OutlookHeaders.txt / Recipients.txt / InternetHeaders.txt read at most (per file).
_MAX_LINE, _MAX_LINES, _MAX_HEADER_BYTES = 65_536, 4_096, 1 << 20
#: pffexport time limit: a floor, plus one second per this many bytes of PST.
_PFFEXPORT_FLOOR_S, _PFFEXPORT_BYTES_PER_S = 120.0, 4_000_000



def _entries(item: Any) -> dict[int, Any]:
    """Entry type -> record entry of the item's first record set (empty when unreadable)."""
    try:
        if not item.number_of_record_sets:
            return {}
        record_set = item.get_record_set(0)
    except (OSError, AttributeError):
        return {}
    return _set_entries(record_set)


def _set_entries(record_set: Any) -> dict[int, Any]:
    entries: dict[int, Any] = {}
    try:
        count = record_set.number_of_entries
    except OSError:
        return entries
    for index in range(count):
        try:
            entry = record_set.get_entry(index)
            entries.setdefault(entry.entry_type, entry)
        except OSError:
            continue
    return entries


def _string(entries: dict[int, Any], tag: int) -> str | None:
    entry = entries.get(tag)
    if entry is None or entry.value_type not in _STRING_TYPES:
        return None
    try:
        text = entry.get_data_as_string()
    except (OSError, UnicodeError):
        return None
    return text if text else None


def _integer(entries: dict[int, Any], tag: int) -> int | None:
    entry = entries.get(tag)
    if entry is None:
        return None
    if entry.value_type == 0x0040:
        data = entry.data
        return struct.unpack("<Q", data[:8])[0] if data and len(data) >= 8 else None
    if entry.value_type not in _INTEGER_TYPES:
        return None
    try:
        return entry.get_data_as_integer()
    except OSError:
        return None


def _bytes(entries: dict[int, Any], tag: int) -> bytes | None:
    entry = entries.get(tag)
    if entry is None:
        return None
    try:
        return entry.data
    except OSError:
        return None


def _clean_subject(subject: str | None) -> str | None:
    """Drop the MS-PST subject prefix marker (0x01 + prefix length) when present."""
    if subject and subject[0] == "\x01" and len(subject) >= 2:
        return subject[2:]
    return subject


def _nid_of_entryid(entryid: bytes | None) -> int | None:
    """The node id at the end of a PST entry id (flags 4 + provider uid 16 + nid 4)."""
    if not entryid or len(entryid) < 24:
        return None
    return struct.unpack("<I", entryid[20:24])[0]


def _recoverable_subfolder(parent: _Folder, lower_name: str) -> str | None:
    """The dumpster subfolder a child of ``parent`` is in: inherited below the subfolder, and a
    known name only directly under Recoverable Items (a user's own "Purges" folder is not one)."""
    if parent.recoverable_subfolder or not parent.in_recoverable_items:
        return parent.recoverable_subfolder
    if parent.path.rsplit("/", 1)[-1].lower() != RECOVERABLE_ITEMS_NAME:
        return None
    return RECOVERABLE_SUBFOLDERS.get(lower_name)


@dataclass
class _Folder:
    path: str
    identifier: int | None
    in_deleted_items: bool = False
    in_recoverable_items: bool = False
    #: Which Recoverable Items subfolder (canonical spelling) the folder is in, if any.
    recoverable_subfolder: str | None = None
    seen: set[int] = field(default_factory=set)


_MATCH_TIMES = ("Client Submit Time", "Delivery Time")


def _item_keys(attributes: dict[str, Any], timestamps: dict[str, int],
               first_time_only: bool) -> list[tuple[Any, ...]]:
    """Keys by which two items are one message: the Message-ID, and subject + sender + client
    submit time (or, with ``first_time_only`` and no submit time, + delivery time: old copies of a
    sent item may lack the submit time)."""
    keys: list[tuple[Any, ...]] = []
    if attributes.get("message_id"):
        keys.append(("id", attributes["message_id"]))
    for description in _MATCH_TIMES:
        if description in timestamps:
            keys.append((description, attributes.get("subject"), attributes.get("sender_name"),
                         timestamps[description]))
            if first_time_only:
                break
    return keys


class _PresentItems:
    """The items a PST still holds (in folders or as orphans), to tell a stale copy libpff recovers
    from an old B-tree page apart from a message that is gone."""

    def __init__(self) -> None:
        self._keys: set[tuple[Any, ...]] = set()

    def noted(self, records: Iterator[Record]) -> Iterator[Record]:
        """Pass ``records`` through, remembering every item's keys."""
        for record in records:
            if record.data_type == "mail:outlook:item":
                self._keys.update(_item_keys(record.attributes, record.timestamps, False))
            yield record

    def seen(self, attributes: dict[str, Any], timestamps: dict[str, int]) -> bool:
        """True when the item matches one seen before; it is remembered either way (so a second
        recovered copy of a gone message is a stale copy too)."""
        keys = _item_keys(attributes, timestamps, True)
        known = any(key in self._keys for key in keys)
        self._keys.update(keys)
        return known


class OutlookPstParser(Parser):
    """Outlook personal (.pst), offline (.ost) and nickname (.nst) stores."""

    NAME = "outlook_pst"
    DESCRIPTION = ("Outlook PST/OST/NST (libpff): folders, messages, Deleted Items and Recoverable "
                   "Items, orphan and recovered items")
    DATA_TYPES = ("mail:outlook:folder", "mail:outlook:item")

    @classmethod
    def sniff(cls, head: bytes, name: str) -> bool:
        # "!BDN" then the client magic: SM (PST), SO (OST); NST files use the PST header too.
        return head[:4] == b"!BDN" and head[8:10] in (b"SM", b"SO")

    def parse(self, fh: BinaryIO, ctx: ParseContext) -> Iterator[Record]:
        try:
            import pypff
        except ImportError:
            ctx.warn("libpff-python (pypff) is not installed: PST/OST not parsed")
            return
        pff = pypff.file()
        try:
            pff.open_file_object(fh)
        except OSError as exc:
            ctx.warn(f"not a readable PST/OST: {exc}", 0)
            return
        self._order = 0
        try:
            wastebasket = None
            try:
                store = pff.get_message_store()
                wastebasket = _nid_of_entryid(_bytes(_entries(store), PR_IPM_WASTEBASKET_ENTRYID))
            except _PFF_ERRORS:
                ctx.warn("message store unreadable: Deleted Items found by name only")
            try:
                root = pff.get_root_folder()
            except _PFF_ERRORS as exc:
                ctx.warn(f"root folder unreadable: {exc}")
                root = None
            present = _PresentItems()
            if root is not None:
                yield from present.noted(self._walk(root, _Folder(path="", identifier=root.identifier),
                                                    wastebasket, ctx, depth=0))
            yield from present.noted(self._extra_items(pff, ctx))
            if getattr(pff, "recover_items", None) is None:
                yield from self._pffexport_items(fh, ctx, present)
        finally:
            try:
                pff.close()
            except OSError:
                pass

    # -- folders ------------------------------------------------------------------------------
    def _walk(self, folder: Any, info: _Folder, wastebasket: int | None, ctx: ParseContext,
              depth: int) -> Iterator[Record]:
        if depth > 64:
            ctx.warn(f"folder tree deeper than 64 levels at {info.path}: stopped")
            return
        if info.path:
            yield self._folder_record(folder, info, ctx)
        try:
            sub_items = folder.number_of_sub_items
        except OSError:
            sub_items = 0
        expected = 0
        try:
            expected = folder.number_of_sub_messages
        except OSError:
            pass
        read = 0
        for index in range(sub_items):
            try:
                item = folder.get_sub_item(index)
            except _PFF_ERRORS as exc:
                ctx.warn(f"{info.path or '/'}: sub item {index} unreadable: {exc}")
                continue
            identifier = item.identifier
            if type(item).__name__ == "folder" or identifier & NID_TYPE_MASK != NID_TYPE_NORMAL_MESSAGE:
                continue  # folders come below; associated (hidden) contents are views and rules
            read += 1
            yield self._item_record(item, info, ctx)
        if read < expected:
            ctx.warn(f"{info.path or '/'}: the folder counts {expected} messages but only {read} "
                     "are linked to it in the descriptor index (orphaned or unreadable items)")
        try:
            count = folder.number_of_sub_folders
        except OSError:
            count = 0
        for index in range(count):
            try:
                sub = folder.get_sub_folder(index)
            except _PFF_ERRORS as exc:
                ctx.warn(f"{info.path or '/'}: sub folder {index} unreadable: {exc}")
                continue
            name = _name(sub) or f"(folder {sub.identifier})"
            lower = name.lower()
            child = _Folder(
                path=f"{info.path}/{name}", identifier=sub.identifier,
                in_deleted_items=info.in_deleted_items or sub.identifier == wastebasket or (
                    wastebasket is None and lower in DELETED_ITEMS_NAMES),
                in_recoverable_items=info.in_recoverable_items or lower == RECOVERABLE_ITEMS_NAME,
                recoverable_subfolder=_recoverable_subfolder(info, lower))
            yield from self._walk(sub, child, wastebasket, ctx, depth + 1)

    def _folder_record(self, folder: Any, info: _Folder, ctx: ParseContext) -> Record:
        entries = _entries(folder)
        timestamps = {desc: micros for desc, tag in TIME_PROPS[2:4]
                      if (micros := from_filetime(_integer(entries, tag))) is not None}
        try:
            message_count = folder.number_of_sub_messages
        except OSError:
            message_count = None
        attributes: dict[str, Any] = {
            "folder_path": info.path, "identifier": info.identifier,
            "container_class": _string(entries, PR_CONTAINER_CLASS),
            "content_count": _integer(entries, PR_CONTENT_COUNT),
            "unread_count": _integer(entries, PR_CONTENT_UNREAD), "message_count": message_count,
            "store": ctx.provenance.source_path}
        self._mark(attributes, info)
        record = Record(data_type="mail:outlook:folder",
                        message=f"Outlook folder {info.path} ({message_count} items)",
                        provenance=ctx.provenance, parser=self.NAME, order=self._order,
                        timestamps=timestamps, attributes=attributes, host=ctx.host, user=ctx.user,
                        recovered=bool(ctx.entry.get("deleted")))
        self._order += 1
        return record

    @staticmethod
    def _mark(attributes: dict[str, Any], info: _Folder) -> None:
        if info.in_deleted_items:
            attributes["in_deleted_items"] = True
            attributes["in_trash"] = True
        if info.in_recoverable_items:
            attributes["in_recoverable_items"] = True
        if info.recoverable_subfolder:
            attributes["recoverable_items_folder"] = info.recoverable_subfolder

    # -- items --------------------------------------------------------------------------------
    def _item_record(self, item: Any, info: _Folder | None, ctx: ParseContext,
                     origin: str = "folder") -> Record:
        entries = _entries(item)
        corrupted = not entries
        timestamps = {desc: micros for desc, tag in TIME_PROPS
                      if (micros := from_filetime(_integer(entries, tag))) is not None}
        flags = _integer(entries, PR_MESSAGE_FLAGS)
        subject = _clean_subject(_string(entries, PR_SUBJECT))
        sender = _string(entries, PR_SENDER_NAME) or _string(entries, PR_SENT_REPRESENTING_NAME)
        attributes: dict[str, Any] = {
            "folder_path": info.path if info else None, "identifier": item.identifier,
            "message_class": _string(entries, PR_MESSAGE_CLASS), "subject": subject,
            "sender_name": sender, "sender_email": _string(entries, PR_SENDER_EMAIL_ADDRESS),
            "display_to": _string(entries, PR_DISPLAY_TO), "display_cc": _string(entries, PR_DISPLAY_CC),
            "recipients": self._recipients(item, ctx),
            "message_id": _string(entries, PR_INTERNET_MESSAGE_ID), "message_flags": flags,
            "read": bool(flags & MSGFLAG_READ) if flags is not None else None,
            "size": _integer(entries, PR_MESSAGE_SIZE), "origin": origin,
            "store": ctx.provenance.source_path}
        if info is not None:
            self._mark(attributes, info)
        recovered = origin != "folder"
        if recovered:
            attributes["recovered_item"] = True
        if PR_DELETED_ON in entries:
            attributes["deleted_on_set"] = True
        if corrupted:
            ctx.warn(f"item {item.identifier}: no readable properties")
        where = info.path if info else f"({origin} item, no folder)"
        to = attributes["display_to"] or ", ".join(r.get("email") or r.get("name") or "?"
                                                   for r in attributes["recipients"]) or "?"
        text = (f"Outlook {attributes['message_class'] or 'item'} in {where} from {sender or '?'} "
                f"to {to}: {subject or '(no subject)'}")
        record = Record(data_type="mail:outlook:item", message=text, provenance=ctx.provenance,
                        parser=self.NAME, order=self._order, timestamps=timestamps,
                        attributes=attributes, host=ctx.host, user=ctx.user,
                        recovered=recovered or bool(ctx.entry.get("deleted")), corrupted=corrupted)
        self._order += 1
        return record

    @staticmethod
    def _recipients(item: Any, ctx: ParseContext) -> list[dict[str, Any]]:
        try:
            recipients = item.recipients
        except (*_PFF_ERRORS, AttributeError):
            return []
        if recipients is None:
            return []
        result = []
        try:
            count = recipients.number_of_recipients
        except OSError:
            return []
        for index in range(count):
            try:
                entries = _set_entries(recipients.get_recipient(index))
            except _PFF_ERRORS:
                ctx.warn(f"item {item.identifier}: recipient {index} unreadable")
                continue
            kind = _integer(entries, PR_RECIPIENT_TYPE)
            result.append({"name": _string(entries, PR_DISPLAY_NAME),
                           "email": _string(entries, PR_SMTP_ADDRESS) or _string(entries, PR_EMAIL_ADDRESS),
                           "type": RECIPIENT_TYPES.get(kind, kind) if kind is not None else None})
        return result

    def _extra_items(self, pff: Any, ctx: ParseContext) -> Iterator[Record]:
        """Orphan items (in the index, in no folder) and libpff-recovered items (freed blocks)."""
        try:
            orphans = pff.number_of_orphan_items
        except (OSError, AttributeError):
            orphans = 0
        for index in range(orphans):
            try:
                item = pff.get_orphan_item(index)
            except _PFF_ERRORS as exc:
                ctx.warn(f"orphan item {index} unreadable: {exc}")
                continue
            if type(item).__name__ == "folder":
                yield self._orphan_folder(item, ctx)
                continue
            yield self._item_record(item, None, ctx, origin="orphan")
        recover = getattr(pff, "recover_items", None)
        if recover is None:
            return
        try:
            recover()
            recovered = pff.number_of_recovered_items
        except (OSError, AttributeError) as exc:
            ctx.warn(f"libpff item recovery failed: {exc}")
            return
        for index in range(recovered):
            try:
                item = pff.get_recovered_item(index)
            except _PFF_ERRORS as exc:
                ctx.warn(f"recovered item {index} unreadable: {exc}")
                continue
            yield self._item_record(item, None, ctx, origin="recovered")

    def _orphan_folder(self, folder: Any, ctx: ParseContext) -> Record:
        info = _Folder(path=f"(orphan)/{_name(folder) or folder.identifier}", identifier=folder.identifier)
        record = self._folder_record(folder, info, ctx)
        attributes = dict(record.attributes, recovered_item=True, origin="orphan")
        return dataclasses.replace(record, attributes=attributes, recovered=True)

    # -- items recovered from freed blocks, through pffexport ---------------------------------
    def _pffexport_items(self, fh: BinaryIO, ctx: ParseContext,
                         present: _PresentItems) -> Iterator[Record]:
        """libpff's recovered items as pffexport exports them, less stale copies of present items."""
        exe = shutil.which("pffexport")
        if exe is None:
            ctx.warn("recovery of items from freed blocks skipped: it needs pffexport (Debian "
                     "pff-tools), which is not on PATH, and the installed pypff binds no recover_items")
            return
        path = getattr(fh, "name", None)
        if not isinstance(path, str) or not os.path.isfile(path):
            ctx.warn("recovery of items from freed blocks skipped: pffexport needs a local file and "
                     "this PST is read from a stream")
            return
        with tempfile.TemporaryDirectory(prefix="inboxtrail-pffexport-") as work:
            run = _run_pffexport(exe, path, Path(work), ctx)
            if run is None:
                return
            unreadable, skipped, total = run
            kept = stale = 0
            for number, folder in _exported_items(Path(work) / "export.recovered"):
                record = self._exported_record(folder, number, ctx)
                if record is None:
                    unreadable += 1
                elif present.seen(record.attributes, record.timestamps):
                    stale += 1
                else:
                    kept += 1
                    self._order += 1
                    yield record
        summary = (f"pffexport recovered {total} entries from freed blocks: {kept} message(s) no "
                   f"longer in the PST, {stale} stale copies of items still present (not emitted), "
                   f"{skipped} of types it does not export, {unreadable} unreadable")
        if kept:
            ctx.warn(summary)
        else:
            log.debug("%s: %s", ctx.provenance.source_path, summary)

    def _exported_record(self, folder: Path, number: int, ctx: ParseContext) -> Record | None:
        """A record for one exported item folder (at the next order, which the caller takes only if
        it keeps the record), or None when its OutlookHeaders.txt is unusable."""
        fields = _key_values(folder / "OutlookHeaders.txt")
        if not fields:
            return None
        timestamps = {description: micros for label, description in PFFEXPORT_TIMES.items()
                      if (micros := _pff_time(fields.get(label))) is not None}
        flags = _hex(fields.get("flags"))
        subject = _clean_subject(fields.get("subject"))
        sender = fields.get("sender name") or fields.get("sent representing name")
        recipients = _exported_recipients(folder / "Recipients.txt")
        size = fields.get("size")
        attributes: dict[str, Any] = {
            "folder_path": None, "identifier": None, "message_class": None, "subject": subject,
            "sender_name": sender, "sender_email": fields.get("sender email address"),
            "display_to": None, "display_cc": None, "recipients": recipients,
            "message_id": _message_id(folder / "InternetHeaders.txt"), "message_flags": flags,
            "read": bool(flags & MSGFLAG_READ) if flags is not None else None,
            "size": int(size) if size and size.isdigit() else None, "origin": "recovered",
            "store": ctx.provenance.source_path, "recovered_item": True,
            "recovered_by": "pffexport", "recovered_number": number}
        to = ", ".join(r.get("email") or r.get("name") or "?" for r in recipients) or "?"
        text = (f"Outlook item in (recovered item, no folder) from {sender or '?'} to {to}: "
                f"{subject or '(no subject)'}")
        record = Record(data_type="mail:outlook:item", message=text, provenance=ctx.provenance,
                        parser=self.NAME, order=self._order, timestamps=timestamps,
                        attributes=attributes, host=ctx.host, user=ctx.user, recovered=True)
        return record


def _run_pffexport(exe: str, path: str, work: Path,
                   ctx: ParseContext) -> tuple[int, int, int] | None:
    """Run ``pffexport -m recovered`` into ``work``; (unreadable, skipped, total) entries it
    reported, or None (with a warning) when it failed or ran out of time."""
    limit = max(_PFFEXPORT_FLOOR_S, os.path.getsize(path) / _PFFEXPORT_BYTES_PER_S)
    out_path, err_path = work / "stdout.txt", work / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        try:
            # an absolute path: a bundle file named "-…" must not read as an option
            done = subprocess.run([exe, "-m", "recovered", "-q", "-t", str(work / "export"),
                                   os.path.abspath(path)],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=limit,
                                  check=False, env={**os.environ, "LC_ALL": "C.UTF-8"})
        except subprocess.TimeoutExpired:
            ctx.warn(f"recovery of items from freed blocks skipped: pffexport took longer than "
                     f"{limit:.0f} s")
            return None
        except OSError as exc:
            ctx.warn(f"recovery of items from freed blocks skipped: pffexport did not run: {exc}")
            return None
    unreadable = skipped = total = 0
    for line in _lines(out_path, max_lines=None):
        if line.startswith("Unable to retrieve type of item "):
            unreadable += 1
        elif line.startswith("Skipped item "):
            skipped += 1
        if (found := re.search(r" out of (\d+)", line)) is not None:
            total = int(found.group(1))
    if done.returncode != 0:
        reason = f"exit status {done.returncode}"
        for line in _lines(err_path, max_lines=None):
            reason = line.strip() or reason
        ctx.warn(f"recovery of items from freed blocks failed: pffexport: {reason}")
        return None
    return unreadable, skipped, total


def _lines(path: Path, max_lines: int | None = _MAX_LINES) -> Iterator[str]:
    """The lines of a text file pffexport wrote (UTF-8, odd bytes replaced), each cut at
    :data:`_MAX_LINE` characters and at most ``max_lines`` of them, so a damaged entry cannot
    exhaust memory."""
    count = 0
    try:
        with path.open("r", encoding="utf-8", errors="replace", newline=None) as handle:
            while max_lines is None or count < max_lines:
                line = handle.readline(_MAX_LINE)
                if not line:
                    return
                count += 1
                yield line.rstrip("\r\n")
    except OSError:
        return


def _exported_items(recovered: Path) -> Iterator[tuple[int, Path]]:
    """(number, folder) of every item folder pffexport exported, in its numbering order. Folders
    it recovered (named after the folder, or ``FolderNNNNN``) are not items and are left out."""
    try:
        names = [entry.name for entry in os.scandir(recovered) if entry.is_dir()]
    except OSError:
        return
    items = [(int(match.group(2)), match.group(1), name) for name in names
             if (match := _ITEM_DIR.fullmatch(name)) and match.group(1) != "Folder"]
    for number, _, name in sorted(items):
        if (recovered / name / "OutlookHeaders.txt").is_file():
            yield number, recovered / name


def _key_values(path: Path) -> dict[str, str]:
    """``Label:<tabs>value`` lines as lower-cased label -> value (lines with no value skipped,
    the first occurrence kept)."""
    fields: dict[str, str] = {}
    for line in _lines(path):
        label, colon, value = line.partition(":")
        value = value.strip()
        if colon and value and not line.startswith("\t"):
            fields.setdefault(label.strip().lower(), value)
    return fields


def _exported_recipients(path: Path) -> list[dict[str, Any]]:
    """Recipients.txt: blocks of ``Display name``/``Email address``/``Recipient type`` lines
    separated by blank lines, in the shape of live items' recipients."""
    recipients: list[dict[str, Any]] = []
    block: dict[str, str] = {}
    for line in [*_lines(path), ""]:
        label, colon, value = line.partition(":")
        if colon and value.strip():
            block.setdefault(label.strip().lower(), value.strip())
        elif not line.strip() and block:
            kind = block.get("recipient type")
            recipients.append({"name": block.get("display name"), "email": block.get("email address"),
                               "type": kind.lower() if kind else None})
            block = {}
    return recipients


def _message_id(path: Path) -> str | None:
    """The Message-ID of InternetHeaders.txt (the transport headers), if it has one."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_MAX_HEADER_BYTES)
    except OSError:
        return None
    value = BytesHeaderParser().parsebytes(head).get("Message-ID")
    if value is None:
        return None
    return " ".join(str(value).split()) or None


def _pff_time(text: str | None) -> int | None:
    """µs for a pffexport time, through the FILETIME it printed (so 1601-01-01, "not set", is
    None as for live items); None for anything else."""
    match = _PFF_TIME.match(text or "")
    if match is None or match.group(1) not in _MONTHS:
        return None
    month, day, year, hour, minute, second, nanos = match.groups()
    seconds = calendar.timegm((int(year), _MONTHS[month], int(day), int(hour), int(minute),
                               int(second), 0, 0, 0))
    return from_filetime(seconds * 10_000_000 + FILETIME_UNIX_OFFSET + int(nanos) // 100)


def _hex(text: str | None) -> int | None:
    """The ``0x...`` number at the start of a value such as ``0x00000011 (Read, Has attachments)``."""
    match = re.match(r"0x([0-9a-fA-F]+)", text or "")
    return int(match.group(1), 16) if match else None
