"""A learned model of the reward: Bayesian ridge regression over architecture features.

The Q-learning agent fits it online on every evaluation it is told (its replay memory) and
uses it to choose among several proposals of its epsilon-greedy policy (docs/design.md,
"The surrogate"). Features are sparse and named, so the model grows with the
architectures it sees and needs no table of the space:

- NAS-Bench-201 (and any space without its own features): one indicator per
  (decision step, action), i.e. per (edge, operation);
- the NSC block space: per layer, (index, type, kernel); counts of each (type, kernel);
  the depth; the number of layers the block's output concatenates (those no other layer
  reads); the number of two-input (add, concat) layers.

The model is a deterministic function of the results added, in order: a strategy rebuilds
it from its replay memory on resume and gets exactly the same fit. Its linear algebra runs
on one BLAS thread: the master shares its cores with the workers (many threads on few
cores made a 200 x 200 inverse 60 times slower), and one thread's rounding does not
depend on the machine's thread count. Pure Python and numpy: never imports torch.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from blockqnn import nsc
from blockqnn.space import NSCSpace, Space

#: Sparse named features of one architecture: feature name -> value.
Features = dict[Hashable, float]


def featurizer(space: Space) -> Callable[[Hashable], Features]:
    """The feature function of ``space`` (see the module docstring)."""
    if isinstance(space, NSCSpace):
        return nsc_features

    def step_features(arch: Hashable) -> Features:
        return {("step", t, action): 1.0 for t, action in enumerate(space.trajectory(arch))}

    return step_features


def nsc_features(block: nsc.Block) -> Features:
    """The NSC-derived features of ``block`` (see the module docstring)."""
    body = nsc.body(block)
    ops = Counter(("op", layer.type, layer.kernel) for layer in body)
    out: Features = {("at", layer.index, layer.type, layer.kernel): 1.0 for layer in body}
    out.update({name: float(count) for name, count in ops.items()})
    out[("depth", len(body))] = 1.0
    out[("outputs", len(nsc.leaves(block)))] = 1.0
    out[("two-input", sum(1 for layer in body if layer.type in nsc.TWO_INPUT))] = 1.0
    return out


class RidgeSurrogate:
    """Bayesian linear regression of the reward on sparse features.

    ``add(arch, reward)`` records one result; :meth:`predict` gives the posterior mean and
    standard deviation of the reward of architectures. The weights have a Gaussian prior
    of precision ``ridge`` (in units of one observation), the targets are centred on
    their mean, and the noise variance is the mean squared residual of the fit (at least
    ``1e-6``). ``floor`` (a quantile in [0, 1)) raises every target below that quantile of
    the rewards seen to it: the model spends its capacity on ranking the good
    architectures instead of fitting the failures (0 keeps every target as told).

    The fit is computed lazily (on the first :meth:`predict` after an :meth:`add`) and is a
    deterministic function of the results added, in order.
    """

    def __init__(
        self, features: Callable[[Hashable], Features], *, ridge: float = 1.0, floor: float = 0.0
    ) -> None:
        if not ridge > 0:
            raise ValueError(f"ridge must be > 0, got {ridge}")
        if not 0 <= floor < 1:
            raise ValueError(f"floor must lie in [0, 1), got {floor}")
        self.features, self.ridge, self.floor = features, ridge, floor
        self._index: dict[Hashable, int] = {}
        self._rows: list[dict[int, float]] = []
        self._targets: list[float] = []
        self._fit: tuple[np.ndarray, np.ndarray, float, float] | None = None

    def __len__(self) -> int:
        return len(self._targets)

    def add(self, arch: Hashable, reward: float) -> None:
        """Record one result (reward in percent)."""
        row = {}
        for name, value in self.features(arch).items():
            row[self._index.setdefault(name, len(self._index))] = value
        self._rows.append(row)
        self._targets.append(float(reward))
        self._fit = None

    def predict(self, archs: Sequence[Hashable]) -> tuple[list[float], list[float]]:
        """Posterior means and standard deviations of the rewards of ``archs`` (features
        never seen weigh nothing). Before any result: the means 0 and deviations inf."""
        if not self._targets:
            return [0.0] * len(archs), [math.inf] * len(archs)
        weights, inverse, offset, noise = self._fitted()
        x = self._matrix([self.features(arch) for arch in archs], len(weights))
        with threadpool_limits(limits=1, user_api="blas"):
            mean = offset + x @ weights
            spread = np.sqrt(noise * np.einsum("ij,jk,ik->i", x, inverse, x) + noise)
        return mean.tolist(), spread.tolist()

    def weights(self) -> dict[Hashable, float]:
        """The fitted weight of each feature seen (for tests and inspection)."""
        if not self._targets:
            return {}
        fitted = self._fitted()[0]
        return {name: float(fitted[i]) for name, i in self._index.items()}

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        if self._fit is None:
            self._fit = self._solve()
        return self._fit

    def _solve(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        with threadpool_limits(limits=1, user_api="blas"):
            return self._solve_here()

    def _solve_here(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        x = self._matrix(self._rows, len(self._index), named=False)
        y = np.asarray(self._targets)
        if self.floor > 0:
            y = np.maximum(y, np.quantile(y, self.floor))
        offset = float(y.mean())
        precision = x.T @ x + self.ridge * np.eye(x.shape[1])
        inverse = np.linalg.inv(precision)
        weights = inverse @ (x.T @ (y - offset))
        residual = y - offset - x @ weights
        noise = max(float(residual @ residual) / len(y), 1e-6)
        return weights, inverse, offset, noise

    def _matrix(self, rows: Sequence[dict], width: int, *, named: bool = True) -> np.ndarray:
        """Dense rows of the features (by name, or by column when ``named`` is False);
        unknown names are dropped."""
        out = np.zeros((len(rows), width))
        for i, row in enumerate(rows):
            for name, value in row.items():
                j = self._index.get(name) if named else name
                if j is not None:
                    out[i, j] = value
        return out
