"""The suite: a new activation judged across task families against stored baselines.

definition (what a suite trains, versioned) -> baselines (the stored runs and under
which versions they pair) -> run (train only what is new, next to them) -> score
(verdicts per workload and across workloads) -> leaderboard (one HTML page).
"""
