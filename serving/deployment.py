"""Deploys without downtime: the serving process follows the recommender champion of ``models.pipeline.registry``.

Every ``MODEL_RELOAD_SECONDS`` (default 10; 0 turns it off) a daemon thread reads the champion's tag. When
it changed, the new model is loaded from the BentoML model store *beside* the one serving, checked (one
forward pass must give a finite score per item), and only then swapped in with a single reference
assignment: a request in flight keeps the model it took, the next one gets the new model, and no request
waits or fails. A champion that cannot be loaded or fails the check is not deployed: the current model
keeps serving, ``/deployment`` reports the error, and that tag is not retried until the champion changes
again (e.g. ``make rollback``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedRecommender:
    """One deployable recommender: the item ranker's package, its vocabulary and the tag it came from."""

    tag: str
    model: object  # models.pipeline.served_ranker.RankerPackage (the ItemRanker in eval mode, the item side)
    vocab: object  # models.pipeline.data.Vocabulary: items (most popular first), categories, popular_items
    item_categories: np.ndarray  # category of each item of vocab.items
    deployed_at: dt.datetime

    @classmethod
    def from_directory(cls, tag: str, path: Path) -> LoadedRecommender:
        """Load and check the package saved in ``path``; raises ValueError when it cannot serve."""
        import torch

        from models.pipeline.data import Vocabulary
        from models.pipeline.item_signals import SIGNALS
        from models.pipeline.served_ranker import RankerPackage

        if not RankerPackage.is_package(path):
            raise ValueError(f"model {tag} is no item-ranker package (ranker.json missing): retrain it")
        package = RankerPackage.load(path)
        vocab = Vocabulary.from_json(json.loads((path / "vocabulary.json").read_text()))
        scores = package.model.predict(torch.zeros(3, len(SIGNALS)))
        if not len(package.items) or not bool(torch.isfinite(scores).all()):
            raise ValueError(
                f"model {tag} fails the smoke check: {len(package.items)} items, "
                f"finite scores: {bool(torch.isfinite(scores).all())}"
            )
        categories = np.array([vocab.item_category.get(i) for i in vocab.items], dtype=object)
        return cls(tag, package, vocab, categories, dt.datetime.now(dt.UTC))

    @classmethod
    def from_store(cls, tag: str) -> LoadedRecommender:
        import bentoml

        bento_model = bentoml.models.get(tag)
        return cls.from_directory(str(bento_model.tag), Path(bento_model.path))


class ChampionFollower:
    """Holds the recommender being served (``current``) and swaps in a new champion once it has loaded."""

    def __init__(
        self,
        initial: LoadedRecommender,
        champion: Callable[[], str | None],
        load: Callable[[str], LoadedRecommender] = LoadedRecommender.from_store,
    ):
        self.current = initial
        self.last_error: str | None = None
        self._champion, self._load = champion, load
        self._failed_tag: str | None = None
        self._stop = threading.Event()

    def check(self) -> bool:
        """Deploy the champion if it changed and loads; returns True when a new model was swapped in."""
        try:
            tag = self._champion()
        except Exception as error:  # noqa: BLE001 (an unreadable registry must not stop serving)
            self.last_error = f"cannot read the champion: {error}"
            return False
        if tag is None or tag == self.current.tag or tag == self._failed_tag:
            return False
        try:
            loaded = self._load(tag)
        except Exception as error:  # noqa: BLE001 (whatever breaks the load, the current model keeps serving)
            self._failed_tag, self.last_error = tag, f"champion {tag} not deployed: {error}"
            log.error("%s; still serving %s", self.last_error, self.current.tag)
            return False
        previous, self.current = self.current.tag, loaded  # one assignment: the swap
        self._failed_tag, self.last_error = None, None
        log.info("deployed %s (was %s)", loaded.tag, previous)
        return True

    def start(self, interval_seconds: float) -> None:
        """Check every ``interval_seconds`` in a daemon thread (nothing when it is 0 or less)."""
        if interval_seconds <= 0:
            return

        def loop() -> None:
            while not self._stop.wait(interval_seconds):
                self.check()

        threading.Thread(target=loop, name="champion-follower", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def wait_until_serving(url: str, tag: str, timeout_seconds: float = 120, token: str | None = None) -> dict:
    """Poll ``url``/deployment until the server serves ``tag``; raises RuntimeError with the server's
    reason when it does not within ``timeout_seconds`` (the previous model keeps serving then)."""
    import time

    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline, state = time.monotonic() + timeout_seconds, {}
    while time.monotonic() < deadline:
        state = requests.post(f"{url.rstrip('/')}/deployment", json={}, headers=headers, timeout=10).json()
        if state.get("model") == tag:
            return state
        if state.get("last_error") and tag in state["last_error"]:
            break
        time.sleep(1)
    raise RuntimeError(
        f"{url} did not deploy {tag}: it serves {state.get('model')} "
        f"({state.get('last_error') or 'no error reported; timed out'})"
    )
