"""The classic "buy till you die" churn models, fitted by maximum likelihood: BG/NBD and Pareto/NBD.

Each customer is summarised at a cutoff by ``x`` (repeat transactions: purchase days after the first day the
customer was seen), ``t_x`` (days from that first day to the last purchase day; 0 when x = 0) and ``T`` (days from
it to the cutoff) (``summary``). While alive a customer buys as a Poisson process of rate λ ~ Gamma(r, α) and
then dies:

- **BG/NBD** (Fader, Hardie & Lee 2005): after each purchase the customer dies with probability p ~ Beta(a, b).
- **Pareto/NBD** (Schmittlein, Morrison & Colombo 1987): the lifetime is exponential with rate μ ~ Gamma(s, β).

``fit`` maximises the log-likelihood over the logs of the parameters (L-BFGS-B) and gives standard errors from
the inverse of the numerical Hessian (delta method back to the parameters). The churn score is the expected
number of purchases in the next ``t`` days (``expected_purchases``; few expected purchases = likely to churn):
P(alive) alone is no score, as it is 1 for every customer without a repeat purchase. ``simulate`` draws customers
from a model's own generative process, for the known-answer tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

DAY = pd.Timedelta(days=1)


def summary(events: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Per user with an event before ``cutoff`` (index user_id): ``x``, ``t_x``, ``T`` in days (module docstring);
    days are UTC days, a purchase day counts once however many lines it has."""
    past = events[events["ts"] < cutoff]
    birth = past.groupby("user_id")["ts"].min().dt.floor("D")
    purchases = past.loc[past["event_type"] == "purchase", ["user_id", "ts"]]
    days = purchases.assign(day=purchases["ts"].dt.floor("D"))[["user_id", "day"]].drop_duplicates()
    days = days[days["day"] > days["user_id"].map(birth)]
    out = pd.DataFrame(index=birth.index)
    out["x"] = days.groupby("user_id").size().reindex(out.index, fill_value=0).astype(float)
    last = days.groupby("user_id")["day"].max().reindex(out.index)
    out["t_x"] = ((last - birth) / DAY).fillna(0.0)
    out["T"] = (cutoff - birth) / DAY
    return out


def _log_sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(e^a − e^b) for a ≥ b (−inf where they are equal)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return a + np.log1p(-np.exp(np.minimum(b - a, 0.0)))


@dataclass
class BTYDModel:
    """Shared fitting: ``params`` by maximum likelihood, ``standard_errors`` from the Hessian."""

    params: dict[str, float] = field(default_factory=dict)
    standard_errors: dict[str, float] = field(default_factory=dict)
    log_likelihood: float = float("nan")
    names: tuple[str, ...] = ()
    start: tuple[float, ...] = ()

    def log_likelihoods(self, theta: np.ndarray, x, t_x, T) -> np.ndarray:  # per customer
        raise NotImplementedError

    def fit(self, x, t_x, T) -> BTYDModel:
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        if len(x) < 10 or not (x > 0).any():
            raise ValueError(
                f"{type(self).__name__} needs customers with repeat purchases: {len(x)} customers, "
                f"{int((x > 0).sum())} with a repeat purchase"
            )

        def loss(log_theta):
            with np.errstate(all="ignore"):  # a trial point far out may overflow: it scores as impossible
                value = -self.log_likelihoods(np.exp(log_theta), x, t_x, T).sum()
            return value if np.isfinite(value) else 1e300

        result = minimize(loss, np.log(self.start), method="L-BFGS-B", bounds=[(-12.0, 12.0)] * len(self.start))
        theta = np.exp(result.x)
        hessian = _hessian(loss, result.x)
        try:
            covariance = np.linalg.inv(hessian)
            se_log = np.sqrt(np.clip(np.diag(covariance), 0, None))
        except np.linalg.LinAlgError:
            se_log = np.full(len(theta), np.nan)
        self.params = dict(zip(self.names, map(float, theta)))
        self.standard_errors = dict(zip(self.names, map(float, theta * se_log)))  # delta method
        self.log_likelihood = float(-result.fun)
        return self


def _hessian(f, point: np.ndarray, step: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``point``."""
    n = len(point)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            e_i, e_j = np.eye(n)[i] * step, np.eye(n)[j] * step
            out[i, j] = out[j, i] = (
                f(point + e_i + e_j) - f(point + e_i - e_j) - f(point - e_i + e_j) + f(point - e_i - e_j)
            ) / (4 * step * step)
    return out


@dataclass
class BGNBD(BTYDModel):
    names: tuple[str, ...] = ("r", "alpha", "a", "b")
    start: tuple[float, ...] = (1.0, 10.0, 1.0, 1.0)

    def log_likelihoods(self, theta, x, t_x, T):
        r, alpha, a, b = theta
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
        alive = -(r + x) * np.log(alpha + T)
        with np.errstate(divide="ignore", invalid="ignore"):
            died = np.where(x > 0, np.log(a) - np.log(b + x - 1) - (r + x) * np.log(alpha + t_x), -np.inf)
        return common + np.logaddexp(alive, died)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        r, alpha, a, b = (self.params[k] for k in self.names)
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = np.where(x > 0, a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
        return 1 / (1 + odds)

    def expected_purchases(self, t: float, x, t_x, T) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (Fader, Hardie & Lee 2005, eq. 10)."""
        r, alpha, a, b = (self.params[k] for k in self.names)
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        z = t / (alpha + T + t)
        head = (a + b + x - 1) / (a - 1)
        tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = np.where(x > 0, a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
        return head * tail / (1 + odds)


@dataclass
class ParetoNBD(BTYDModel):
    names: tuple[str, ...] = ("r", "alpha", "s", "beta")
    start: tuple[float, ...] = (1.0, 10.0, 1.0, 10.0)

    def _log_a0(self, theta, x, t_x, T) -> np.ndarray:
        """log A0 of Fader & Hardie's note on the Pareto/NBD likelihood (the hypergeometric branch by α ≥ β)."""
        r, alpha, s, beta = theta
        total = r + s + x
        if alpha >= beta:
            big, second = alpha, s + 1
        else:
            big, second = beta, r + x
        diff = abs(alpha - beta)
        with np.errstate(divide="ignore", invalid="ignore"):
            first = np.log(hyp2f1(total, second, total + 1, diff / (big + t_x))) - total * np.log(big + t_x)
            last = np.log(hyp2f1(total, second, total + 1, diff / (big + T))) - total * np.log(big + T)
        return _log_sub(first, last)

    def log_likelihoods(self, theta, x, t_x, T):
        r, alpha, s, beta = theta
        head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        died = np.log(s) - np.log(r + s + x) + self._log_a0(theta, x, t_x, T)
        return head + np.logaddexp(alive, died)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        theta = np.array([self.params[k] for k in self.names])
        r, alpha, s, beta = theta
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        log_odds = (
            np.log(s)
            - np.log(r + s + x)
            + (r + x) * np.log(alpha + T)
            + s * np.log(beta + T)
            + self._log_a0(theta, x, t_x, T)
        )
        return 1 / (1 + np.exp(log_odds))

    def expected_purchases(self, t: float, x, t_x, T) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (Schmittlein et al. 1987; Fader & Hardie's note, eq. 20)."""
        r, alpha, s, beta = (self.params[k] for k in self.names)
        x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
        rate = (r + x) / (alpha + T)
        if abs(s - 1) < 1e-6:
            spent = (beta + T) * np.log((beta + T + t) / (beta + T))
        else:
            spent = (beta + T) / (s - 1) * (1 - ((beta + T) / (beta + T + t)) ** (s - 1))
        return self.p_alive(x, t_x, T) * rate * spent


MODELS = {"bg_nbd": BGNBD, "pareto_nbd": ParetoNBD}


def simulate(model: str, params: dict[str, float], T: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Customers (x, t_x, T) drawn from ``model``'s generative process with ``params``, each observed for ``T``
    time units from a first purchase at 0."""
    rng = np.random.default_rng(seed)
    rows = []
    for horizon in np.asarray(T, dtype=float):
        rate = rng.gamma(params["r"], 1 / params["alpha"])
        if model == "bg_nbd":
            p = rng.beta(params["a"], params["b"])
            end, alive = horizon, True
        else:
            end = min(horizon, rng.exponential(1 / rng.gamma(params["s"], 1 / params["beta"])))
        now, x, last = 0.0, 0, 0.0
        while True:
            now += rng.exponential(1 / rate)
            if now > end:
                break
            x, last = x + 1, now
            if model == "bg_nbd":
                alive = rng.random() >= p
                if not alive:
                    break
        rows.append((float(x), last, horizon))
    return pd.DataFrame(rows, columns=["x", "t_x", "T"])


def churn_probabilities(
    name: str,
    events: pd.DataFrame,
    train_cutoff: pd.Timestamp,
    y_train: pd.Series,
    cutoff: pd.Timestamp,
    test_users: pd.Index,
    horizon_days: float,
) -> tuple[np.ndarray, dict]:
    """P(churn) of ``test_users`` at ``cutoff`` from model ``name`` (``MODELS``): the model fitted on the events
    before each cutoff scores users by their expected purchases in the horizon, and a Platt scaling of
    log(expected purchases) fitted on the training users' labels (``y_train``, at ``train_cutoff``) turns that
    score into a probability. Returns the probabilities and the test fit's parameters with standard errors."""
    from sklearn.linear_model import LogisticRegression

    def scores(at: pd.Timestamp, users: pd.Index) -> tuple[np.ndarray, BTYDModel]:
        rfm = summary(events, at).reindex(users)
        model = MODELS[name]().fit(rfm["x"], rfm["t_x"], rfm["T"])
        expected = model.expected_purchases(horizon_days, rfm["x"], rfm["t_x"], rfm["T"])
        return np.log(np.clip(np.nan_to_num(expected, nan=0.0), 1e-9, None))[:, None], model

    train_scores, _ = scores(train_cutoff, y_train.index)
    platt = LogisticRegression().fit(train_scores, y_train.to_numpy())
    test_scores, model = scores(cutoff, test_users)
    return platt.predict_proba(test_scores)[:, 1], {
        "params": model.params,
        "standard_errors": model.standard_errors,
        "log_likelihood": model.log_likelihood,
        "platt": {"slope": float(platt.coef_[0, 0]), "intercept": float(platt.intercept_[0])},
    }
