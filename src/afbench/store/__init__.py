"""The results database: every table, its migrations, and the only SQL in afbench.

``Store`` is the read-write handle a sweep uses; the report, ``afbench.load``, merge's
inputs and the exports read through it too.
"""

from afbench.store.database import FINISHED, MIGRATIONS, Store, current_owner, owner_alive

__all__ = ["FINISHED", "MIGRATIONS", "Store", "current_owner", "owner_alive"]
