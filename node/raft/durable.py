"""Closing pysyncobj's durability gap: sync the Raft journal before anyone learns of its entries.

pysyncobj 0.3.17 never fsyncs (/work/shared/pysyncobj-notes.md): its journal is an mmap, and
`currentTerm`/`votedFor` go to a `.meta` file by write + rename. An entry "committed" on a
majority may therefore be lost by a power failure of that majority, and a node that forgot its
vote can vote twice in a term. With `JournalSync` installed on a group:

* journal writes (`add`, truncations) mark the journal dirty;
* before the group sends append-entries (leader) or a successful append-entries reply
  (follower), a dirty journal is msynced and fsynced: an entry counts toward a majority only
  once it is on the disk of the node that reports it, the leader included (it sends the entry
  before anyone can acknowledge it). One sync covers every entry of the message: group commit;
* after `setCurrentTerm` (term and vote) the `.meta` file and its directory are fsynced before
  the vote or the new term is sent (pysyncobj stores it synchronously right before).

It hooks pysyncobj's private methods through their mangled names (`_SyncObj__...`), which is
why the version is pinned; `check_supported()` fails loudly (and a test runs it) if they move.
"""

from __future__ import annotations

import os
from typing import Any

from pysyncobj import SyncObj
from pysyncobj.journal import FileJournal

__all__ = ["JournalSync", "SyncedJournalHooks", "check_supported", "HOOKED_METHODS"]

#: The private SyncObj methods our groups override (here: to sync first).
HOOKED_METHODS = (
    "_SyncObj__sendAppendEntries",
    "_SyncObj__sendNextNodeIdx",
    "_SyncObj__onMessageReceived",  # node/raft/appendfix.py
)


def check_supported() -> None:
    """Raise if the installed pysyncobj lacks what the hooks rely on."""
    missing = [m for m in HOOKED_METHODS if not callable(getattr(SyncObj, m, None))]
    if not callable(getattr(FileJournal, "flush", None)):
        missing.append("FileJournal.flush")
    if missing:
        raise RuntimeError(f"pysyncobj changed: cannot make its journal durable ({missing})")


class JournalSync:
    """Wraps one group's FileJournal; `sync_if_dirty()` is called from the tick thread."""

    def __init__(self, journal: Any) -> None:
        if not isinstance(journal, FileJournal):
            raise TypeError("durable Raft needs pysyncobj's FileJournal (a journalFile)")
        self._journal = journal
        self.dirty = False
        self.syncs = 0
        self.meta_syncs = 0
        self._compacted = False
        for name in ("add", "clear", "deleteEntriesFrom", "deleteEntriesTo"):
            setattr(journal, name, self._marking(getattr(journal, name)))
        original_delete_to = journal.deleteEntriesTo

        def delete_entries_to(entry_to: int) -> None:
            # Log compaction: the new dump file was just renamed into place next to the journal;
            # the directory must be synced with the shortened journal, or a power failure could
            # leave the old dump beside a journal that no longer reaches back to it.
            self._compacted = True
            original_delete_to(entry_to)

        journal.deleteEntriesTo = delete_entries_to
        original_set_term = journal.setCurrentTerm

        def set_current_term(term: int, voted_for: Any) -> None:
            original_set_term(term, voted_for)
            self._sync_meta()

        journal.setCurrentTerm = set_current_term

    def _marking(self, method: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            self.dirty = True
            return method(*args, **kwargs)

        return wrapped

    def sync_if_dirty(self) -> None:
        if not self.dirty:
            return
        resizable = self._journal._FileJournal__journalFile
        resizable.flush()  # msync of the mapping
        os.fsync(resizable._ResizableFile__f.fileno())  # size and any remaining pages
        if self._compacted:
            _fsync_dir(os.path.dirname(os.path.abspath(resizable._ResizableFile__fileName)))
            self._compacted = False
        self.dirty = False
        self.syncs += 1

    def _sync_meta(self) -> None:
        path = self._journal._FileJournal__metaStorer.getPath()
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(os.path.dirname(os.path.abspath(path)))  # the rename of the new .meta
        self.meta_syncs += 1


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SyncedJournalHooks:
    """Mixin for a SyncObj subclass with a `journal_sync` attribute (JournalSync or None): the
    journal is fsynced before the leader sends entries and before a follower acknowledges them
    (pysyncobj never syncs; /work/shared/pysyncobj-notes.md). Runs in the tick thread.

    The method names are pysyncobj's private (mangled) ones, so SyncObj's own calls reach them.
    """

    journal_sync: JournalSync | None

    def _SyncObj__sendAppendEntries(self) -> None:  # noqa: N802 - pysyncobj's mangled name
        if self.journal_sync is not None:
            self.journal_sync.sync_if_dirty()
        SyncObj._SyncObj__sendAppendEntries(self)

    def _SyncObj__sendNextNodeIdx(  # noqa: N802 - pysyncobj's mangled name
        self,
        node: Any,
        reset: bool = False,
        nextNodeIdx: Any = None,  # noqa: N803 - pysyncobj's keyword
        success: bool = False,
    ) -> None:
        if success and self.journal_sync is not None:
            self.journal_sync.sync_if_dirty()
        SyncObj._SyncObj__sendNextNodeIdx(
            self, node, reset=reset, nextNodeIdx=nextNodeIdx, success=success
        )
