"""The replication adapter over pysyncobj: one Raft group per shard replica.

Importing this package sets pysyncobj's pickle protocol to 4 (it hard-codes 2, which grows
`bytes` payloads about 1.5x on the wire and in the journal; /work/shared/pysyncobj-notes.md).
The engine never sees any of this: it is told "apply this batch at Raft index i".
"""

from __future__ import annotations

import pysyncobj.pickle as _pysyncobj_pickle

# A module-level name: no mangling applies, and `dumps`/`dump` read it on every call.
setattr(_pysyncobj_pickle, "__protocol", 4)
