"""What ``interest_pipeline`` trains and serves (``run_window``: a run's parameters and windows from the trigger's
Params):

- ``recommender`` (the interest recommender), ``data`` (staged events, point-in-time Feast features), ``train``
  (config → seed → data → model → fit → evaluate → model store, ``config.yaml``), ``report`` (its evaluation report),
  ``persistence`` (how every model is stored), ``registry`` (champion / challenger over the BentoML store);
- ``churn`` (churn risk, ``churn.yaml``) with ``churn_data`` (cleaning, features, labels) and ``churn_evaluation``
  (metrics, intervals, plot).
"""
