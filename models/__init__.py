"""Models of the platform (PyTorch), their training, and the offline research harness, in three packages:

- ``models.pipeline``: what ``interest_pipeline`` trains and serves: the interest recommender and churn risk, their
  data, training, evaluation report and the model store (champion / challenger).
- ``models.fitting``: the pipeline's decay fit (task ``fit_decay``): per (category × event type) kind the decay
  family and its parameters, and the repeat-purchase family.
- ``models.harness``: the offline research harness (``make evaluate``): the ranker interface, splits and metrics,
  baselines, the parametric next-basket decay model and the neural (sequence) decay model.

Imports flow pipeline → fitting → harness (the repeat family's parameters are chosen on a holdout with the harness's
split and metrics); the harness imports the fitting package's kind table only.
"""
