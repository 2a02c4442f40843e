"""The results database: every table, its migrations, and the only SQL in afbench.

``schema`` holds every table and migration; ``Store`` is the read-write handle a sweep
uses; ``StoreView`` the read-only one of everything that only reads (the report,
``afbench.load``, merge's inputs, the exports).
"""

from afbench.store.database import FINISHED, MIGRATIONS, Store, current_owner, owner_alive
from afbench.store.reading import DamagedRun, StoreView

__all__ = ["FINISHED", "MIGRATIONS", "DamagedRun", "Store", "StoreView", "current_owner", "owner_alive"]
