"""The journal durability hooks find what they need in the installed pysyncobj, and sync."""

from __future__ import annotations

from pathlib import Path

from pysyncobj.journal import FileJournal

from node.raft.durable import JournalSync, check_supported


def test_installed_pysyncobj_has_the_hooked_methods() -> None:
    check_supported()


def test_writes_mark_dirty_and_a_sync_clears_it(tmp_path: Path) -> None:
    journal = FileJournal(str(tmp_path / "j"))
    sync = JournalSync(journal)
    assert not sync.dirty
    journal.add(b"\x02abc", 2, 1)
    assert sync.dirty
    sync.sync_if_dirty()
    assert not sync.dirty and sync.syncs == 1
    sync.sync_if_dirty()
    assert sync.syncs == 1  # nothing new: no second sync
    journal.setCurrentTerm(3, "n1")
    assert sync.meta_syncs == 1
    journal.deleteEntriesFrom(0)
    assert sync.dirty
    reopened = FileJournal(str(tmp_path / "j"))
    assert reopened.getCurrentTerm() == 3


def test_compaction_syncs_the_directory_too(tmp_path: Path) -> None:
    journal = FileJournal(str(tmp_path / "j"))
    sync = JournalSync(journal)
    for i in range(2, 6):
        journal.add(b"\x02x", i, 1)
    journal.deleteEntriesTo(2)
    sync.sync_if_dirty()
    assert sync.syncs == 1 and not sync.dirty
    reopened = FileJournal(str(tmp_path / "j"))
    assert [reopened[i][1] for i in range(len(reopened))] == [4, 5]
