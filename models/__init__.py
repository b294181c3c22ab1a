"""Models of the platform (PyTorch), their training, and the offline research harness. Every module, by purpose:

Served, and trained by the pipeline (``run_window``: a run's parameters and windows from the trigger's Params):
- ``recommender`` (the interest recommender), ``data`` (staged events, point-in-time Feast features), ``train``
  (config → seed → data → model → fit → evaluate → model store, ``config.yaml``), ``report`` (its evaluation
  report), ``metrics`` (ranking metrics), ``persistence`` (how every model is stored), ``registry`` (champion /
  challenger over the BentoML store);
- ``churn`` (churn risk, ``churn.yaml``) with ``churn_data`` (cleaning, features, labels) and ``churn_evaluation``
  (metrics, intervals, plot).

The pipeline's decay fit (task ``fit_decay``):
- ``fit_decay`` (the step: store, report), per (category × event type) kind ``decay_kinds`` ← ``follow_ups``
  (histograms) and ``decay_likelihood`` (families, likelihood, Newton fit), ``decay_kinds.yaml``;
- ``repeat_decay`` (the repeat-purchase family, ``repeat_decay.yaml``) and ``repeat_report`` (its JSON, markdown
  and kernel plot).

The offline research harness (``make evaluate``):
- ``evaluate`` (``evaluate.yaml``, report in ``evaluate_report``) over ``ranking`` (ranker interface, split,
  metrics), ``baselines``, ``decay_fit`` (next-basket parametric decay model; its data in ``decay_data``),
  ``sequence`` (neural decay, ``sequence.yaml``; its windows in ``sequence_data``) and ``repeat_decay``.
"""
