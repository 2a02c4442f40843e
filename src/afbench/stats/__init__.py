"""Statistics on paired runs: the exact tests, corrections and decision rules that the
sweep (``--seeds auto``) and the report share. Depends on numpy/scipy/pandas only.

- settings: which runs may be compared (identical settings apart from activation,
  seed and tuned learning rate);
- paired: the exact sign-flip test, Holm, verdicts against a baseline, divergence
  counted at the worst value, the seeds the exact test needs;
- best: the top group, a confidence set for the best with an error guarantee;
- sequential: --seeds auto as a group-sequential design (alpha spending)."""
