"""tests/support/processes.py: test ports come from below the kernel's ephemeral range, where no
outgoing connection can take them before a server binds them (node/raft/binding.py)."""

from __future__ import annotations

from tests.support.processes import ephemeral_ports, free_port, free_port_range, ports_free


def test_ports_are_free_and_below_the_ephemeral_range() -> None:
    low, high = ephemeral_ports()
    assert 1024 < low <= high
    for _ in range(20):
        base = free_port_range(5)
        assert base + 5 <= low and ports_free(base, 5)
        assert free_port() < low
