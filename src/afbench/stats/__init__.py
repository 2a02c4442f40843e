"""Statistics on paired runs: the exact tests, corrections and decision rules that the
sweep (``--seeds auto``) and the report share. Depends on numpy/scipy/pandas only."""
