"""How every model of the platform is stored: its hyperparameters as JSON plus its ``state_dict``.

A model class sets ``self.hparams`` (the keyword arguments of its ``__init__``) and inherits
``save`` / ``load`` from ``Persisted``; ``load`` rebuilds the model and returns it in eval mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


class Persisted:
    hparams: dict

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hparams.json").write_text(json.dumps(self.hparams, indent=2))
        torch.save(self.state_dict(), directory / "model.pt")

    @classmethod
    def load(cls, directory: Path):
        directory = Path(directory)
        model = cls(**json.loads((directory / "hparams.json").read_text()))
        model.load_state_dict(torch.load(directory / "model.pt", weights_only=True))
        return model.eval()
