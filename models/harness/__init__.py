"""The offline research harness (``make evaluate``):

- ``evaluate`` (the command, ``evaluate.yaml``; its report in ``evaluate_report``);
- ``ranking`` (ranker interface, time-cutoff split, evaluation) and ``metrics`` (ranking metrics, also used by the
  pipeline's training);
- the methods compared: ``baselines``, ``decay_fit`` (next-basket parametric decay model; its data in
  ``decay_data``), ``sequence`` (neural decay, ``sequence.yaml``; its windows in ``sequence_data``) and the
  repeat-purchase family (``models.fitting.repeat_decay``).
"""
