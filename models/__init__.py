"""PyTorch models of the platform: the interest recommender, its data, training and evaluation.

One module per lifecycle step: ``data`` (events and point-in-time features), ``recommender``
(the model), ``metrics`` (ranking metrics), ``train`` (config -> seed -> data -> model -> fit ->
evaluate -> model store).
"""
