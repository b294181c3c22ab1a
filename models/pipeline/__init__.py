"""What ``interest_pipeline`` trains and serves (``run_window``: a run's parameters and windows from the trigger's
Params):

- the served recommender: ``item_ranker`` (the model) on ``item_signals`` (its signals from a state at an instant),
  packaged and ranked by ``served_ranker`` (the function offline evaluation and ``/recommend`` share); ``data``
  (windows, staged events, the vocabulary), ``train`` (config → seed → data → model → fit → evaluate → gate → model
  store, ``config.yaml``), ``comparison`` (the run's test window in the harness protocol), ``report`` (its
  evaluation report), ``persistence`` (how every model is stored), ``registry`` (champion / challenger over the
  BentoML store);
- ``churn`` (churn risk, ``churn.yaml``) with ``churn_data`` (cleaning, features, labels) and ``churn_evaluation``
  (metrics, intervals, plot).
"""
