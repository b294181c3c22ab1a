"""The pipeline's decay fit (task ``fit_decay``):

- ``fit_decay`` (the step: fit, store, report);
- per (category × event type) kind ``decay_kinds`` (``decay_kinds.yaml``) ← ``follow_ups`` (histograms of follow-up
  gaps) and ``decay_likelihood`` (families, likelihood, Newton fit);
- ``repeat_decay`` (the repeat-purchase family, ``repeat_decay.yaml``) and ``repeat_report`` (its JSON, markdown and
  kernel plot).
"""
