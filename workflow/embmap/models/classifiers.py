"""A network's linear classifier ``logits = C f + b``: located among its variables, or recovered by least squares.

Stores hold ``classifier/weight`` C [class, feature] and ``classifier/bias``
b [class]. They are found in two ways:

1. :func:`locate`: the classification model's final kernel [feature, class]
   and bias [class] are picked out by shape, whatever their names, and
   :func:`verify` checks on real images that ``C f + b`` reproduces the
   model's own logits (an error otherwise: the two handles do not belong
   together, or the output is not logits).
2. :class:`LeastSquares`: where no such variables exist, C and b are fitted to
   the features and logits of at least d + 1 images and the relative
   residual is reported (an error if the logits are not affine in f).
"""

from __future__ import annotations

import numpy as np

RTOL = 1e-3  # max |C f + b - logits| relative to max |logits| + 1


class ClassifierError(ValueError):
    pass


class NotLocated(ClassifierError):
    """No [feature, class] kernel with a [class] bias among the variables."""


def locate(variables, d: int, c: int) -> tuple[str, np.ndarray, str, np.ndarray]:
    """Pick the final kernel [d, c] and its bias [c] from (name, array) pairs.

    The last kernel of that shape wins; its bias is the [c] vector declared in
    the same scope, else the last [c] vector. Returns (kernel name, kernel,
    bias name, bias); raises :class:`NotLocated`.
    """
    variables = [(n, np.asarray(v)) for n, v in variables]
    kernels = [(n, v) for n, v in variables if v.shape == (d, c)]
    kernels += [(n, v.reshape(d, c)) for n, v in variables if v.shape == (1, 1, d, c)]  # 1x1 conv classifiers
    biases = [(n, v) for n, v in variables if v.shape == (c,)]
    if not kernels or not biases:
        raise NotLocated(f"no [{d}, {c}] kernel with a [{c}] bias among the classifier's {len(variables)} variables")
    kname, kernel = kernels[-1]
    prefix = kname.rsplit("/", 1)[0]
    bname, bias = next(((n, v) for n, v in biases if n.rsplit("/", 1)[0] == prefix), biases[-1])
    return kname, kernel, bname, bias


def max_error(f: np.ndarray, z: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> float:
    return float(np.abs(f @ weight.T + bias - z).max())


def verify(f: np.ndarray, z: np.ndarray, weight: np.ndarray, bias: np.ndarray, what: str, rtol: float = RTOL) -> float:
    """Check ``f @ weight.T + bias`` against logits ``z`` [n, class]; return the max error."""
    err = max_error(np.asarray(f, np.float64), np.asarray(z, np.float64), weight, bias)
    if err > rtol * (float(np.abs(z).max()) + 1.0):
        raise ClassifierError(f"classifier variables {what} do not reproduce the model's logits (max error "
                              f"{err:.3g} on {len(f)} images); the feature and classification handles may not "
                              "belong to the same network, or the classification output is not logits")
    return err


def verify_outputs(predicted: np.ndarray, outputs: np.ndarray, what: str, rtol: float = RTOL,
                   atol: float | None = None, tolerance: str = "") -> float:
    """Check what C, b predict (through the head's activation, if any) against the model's own ``outputs``.

    The tolerance is ``atol`` where given (a quantised model: its output
    step, described by ``tolerance``), else ``rtol`` (max |outputs| + 1).
    Returns the max error; raises :class:`ClassifierError` naming ``what``.
    """
    predicted, outputs = np.asarray(predicted, np.float64), np.asarray(outputs, np.float64)
    if predicted.shape != outputs.shape:
        raise ClassifierError(f"{what} predict {predicted.shape[1:]} values per image, the model outputs "
                              f"{outputs.shape[1:]}")
    err = float(np.abs(predicted - outputs).max())
    tol = atol if atol is not None else rtol * (float(np.abs(outputs).max()) + 1.0)
    if err > tol:
        raise ClassifierError(f"{what} do not reproduce the model's outputs: max error {err:.3g} on {len(outputs)} "
                              f"images, tolerance {tol:.3g}{' (' + tolerance + ')' if tolerance else ''}; the features "
                              "are not the classifier's input, or the classifier is not this layer")
    return err


class LeastSquares:
    """Collect (features, logits) of up to ``want`` images and fit ``z = C f + b`` by least squares.

    Parameters
    ----------
    d : int
        Feature dimension; at least d + 1 images are needed.
    want : int, optional
        Images to collect (default 2 (d + 1), so the residual measures something).
    rtol : float
        Largest relative residual ||Z - Z_hat||_F / ||Z - mean Z||_F accepted.
    """

    def __init__(self, d: int, want: int | None = None, rtol: float = RTOL):
        self.d, self.rtol = int(d), float(rtol)
        self.want = int(want or 2 * (self.d + 1))
        self.f: list[np.ndarray] = []
        self.z: list[np.ndarray] = []
        self.n = 0

    @property
    def full(self) -> bool:
        return self.n >= self.want

    def add(self, f: np.ndarray, z: np.ndarray) -> None:
        k = min(len(f), self.want - self.n)
        if k > 0:
            self.f.append(np.asarray(f[:k], np.float64))
            self.z.append(np.asarray(z[:k], np.float64))
            self.n += k

    def fit(self) -> tuple[np.ndarray, np.ndarray, dict]:
        """(weight [class, feature], bias [class], info with ``residual`` and ``n_images``)."""
        if self.n < self.d + 1:
            raise ClassifierError(f"recovering the classifier by least squares needs at least d + 1 = {self.d + 1} "
                                  f"images, the split has {self.n}")
        f, z = np.concatenate(self.f), np.concatenate(self.z)
        a = np.hstack([f, np.ones((len(f), 1))])
        coef, *_ = np.linalg.lstsq(a, z, rcond=None)
        zc = z - z.mean(axis=0)
        resid = float(np.linalg.norm(a @ coef - z) / max(np.linalg.norm(zc), 1e-300))
        if resid > self.rtol:
            raise ClassifierError(f"least squares leaves a relative residual of {resid:.3g} on {self.n} images; "
                                  "the classification output is not an affine function of the features "
                                  "(probabilities instead of logits, or handles of different networks?)")
        info = {"method": "least_squares", "n_images": self.n, "residual": resid,
                "max_logit_error": max_error(f, z, coef[:-1].T, coef[-1])}
        return coef[:-1].T, coef[-1], info
