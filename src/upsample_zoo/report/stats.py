"""Statistics of the comparison: per-group description over seeds and paired tests against a baseline.

- describe: n, mean, sample std (ddof 1), 95% CI of the mean (Student t).
- paired_test: the mean paired difference over matching seeds, its 95% CI (paired t,
  ``ttest_rel(...).confidence_interval()``), Cohen's d_z (mean / sample std of the differences), and a
  two-sided p: ``scipy.stats.ttest_rel`` with >= 3 pairs, else the exact sign-flip permutation test over all
  2^n sign patterns (``scipy.stats.permutation_test``).
- holm: Holm-Bonferroni over the upsamplers of one table, per metric.
- Power: with n < 3 pairs the sign-flip p cannot go below 2/2^n (1.0 at n=1, 0.5 at n=2), so no test can
  reach alpha; ``p_floor`` and ``pairs_needed`` say so. From 3 pairs, ``detectable_d_z`` is the smallest true
  |d_z| the two-sided paired t-test finds with 80% power (noncentral t), at alpha/k for Holm over k operators:
  Holm's first step is Bonferroni's, the bar a single true difference must clear.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

ALPHA = 0.05
POWER = 0.8  # the power the report's detectable-effect note is for


def finite(values: Iterable[Any]) -> list[float]:
    """The values that are finite numbers, as floats; anything else is dropped."""
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def finite_or_nan(values: Iterable[Any]) -> list[float]:
    """Every value as a float, nan where it is not a number (keeps positions)."""
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return out


def describe(values: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """n, mean, sample std (ddof 1), and the two-sided t confidence interval of the mean."""
    from scipy import stats

    xs = finite(values)
    n = len(xs)
    nan = float("nan")
    if n == 0:
        return {"n": 0, "mean": nan, "std": nan, "ci_low": nan, "ci_high": nan}
    mean = math.fsum(xs) / n
    if n == 1:
        return {"n": 1, "mean": mean, "std": nan, "ci_low": nan, "ci_high": nan}
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def sign_flip_p(diffs: Sequence[float]) -> float:
    """Exact two-sided sign-flip permutation p-value of the mean paired difference (all 2^n patterns)."""
    import numpy as np
    from scipy import stats

    d = finite(diffs)
    if not d:
        return float("nan")
    if len(d) == 1:  # both patterns, +d and -d, are as extreme as the observation (scipy needs 2 values)
        return 1.0
    # one sample + permutation_type="samples" flips the signs; n_resamples=inf enumerates every pattern. The
    # null distribution is symmetric, so scipy's 2 min(P(T <= t), P(T >= t)) is P(|T| >= |t|).
    res = stats.permutation_test((np.asarray(d),), lambda x, axis: np.mean(x, axis=axis), vectorized=True,
                                 permutation_type="samples", alternative="two-sided", n_resamples=np.inf)
    return float(res.pvalue)


def p_floor(n_pairs: int) -> float:
    """The smallest p the test of ``paired_test`` can give with n pairs: 2/2^n for the exact sign-flip test
    (n < 3), 0 for the paired t-test (n >= 3: any p > 0 is reachable); nan without pairs."""
    if n_pairs < 1:
        return float("nan")
    return 2.0 / 2**n_pairs if n_pairs < 3 else 0.0


def pairs_needed(alpha: float, sign_flip_only: bool = False) -> int | None:
    """The fewest pairs with which a p <= alpha is possible: under ``paired_test``'s rule, or with the exact
    sign-flip test alone (smallest n with 2/2^n <= alpha). None when no n up to 64 does."""
    floor = (lambda n: 2.0 / 2**n) if sign_flip_only else p_floor
    return next((n for n in range(1, 65) if floor(n) <= alpha), None)


def t_power(d_z: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test (one-sample t on the differences) with n pairs at level alpha when
    the true standardized difference is d_z: P(|T| > t_(1-alpha/2, n-1)) with T noncentral t(n-1, d_z sqrt(n)).
    The lower tail is the upper tail at -nc: scipy's nct.cdf far in the tail can return nan, its sf does not."""
    from scipy import stats

    df, nc = n - 1, abs(d_z) * math.sqrt(n)
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


@functools.lru_cache(maxsize=256)
def detectable_d_z(n: int, alpha: float, power: float = POWER) -> float:
    """The smallest |d_z| the two-sided paired t-test with n pairs detects with the given power at level alpha
    (``t_power`` solved by brentq); nan below 2 pairs, where the t-test and d_z are undefined."""
    from scipy import optimize

    if n < 2 or not 0 < alpha < 1 or not alpha < power < 1:
        return float("nan")
    hi = 1.0
    while t_power(hi, n, alpha) < power:  # power rises with |d_z| towards 1: bracket the root
        hi *= 2
        if hi > 1e9:
            return float("nan")
    return float(optimize.brentq(lambda d: t_power(d, n, alpha) - power, 0.0, hi, xtol=1e-10, rtol=1e-12))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order; non-finite p's stay nan and are not
    counted in the family. Sorted ascending, adjusted p_(j) = max over i <= j of min(1, (m - i + 1) p_(i))."""
    ps = [float(p) for p in pvalues]
    idx = sorted((i for i, p in enumerate(ps) if math.isfinite(p)), key=lambda i: ps[i])
    out, running = [float("nan")] * len(ps), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (len(idx) - rank) * ps[i]))
        out[i] = running
    return out


def paired_test(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Paired test of x against y (same seeds, same order): ttest_rel with >= 3 pairs, else sign-flip; also the
    t confidence interval of the mean difference (>= 2 pairs), Cohen's d_z and p_min (``p_floor``)."""
    from scipy import stats

    pairs = [(a, b) for a, b in zip(finite_or_nan(x), finite_or_nan(y)) if math.isfinite(a) and math.isfinite(b)]
    diffs = [a - b for a, b in pairs]
    n = len(diffs)
    nan = float("nan")
    out: dict[str, Any] = {"n_pairs": n, "diff": nan, "p": nan, "test": "none", "ci_low": nan, "ci_high": nan,
                           "d_z": nan, "p_min": p_floor(n)}
    if n == 0:
        out["test"] = "no matching seeds"
        return out
    out["diff"] = math.fsum(diffs) / n
    constant = all(abs(d - diffs[0]) <= 1e-12 * max(1.0, abs(diffs[0])) for d in diffs)
    if n >= 2 and constant:  # identical differences: ttest_rel is nan, the CI is the point, d_z is undefined
        out.update(ci_low=out["diff"], ci_high=out["diff"])
    elif n >= 2:
        res = stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs])
        ci = res.confidence_interval(confidence)
        sd = math.sqrt(math.fsum((d - out["diff"]) ** 2 for d in diffs) / (n - 1))
        out.update(ci_low=float(ci.low), ci_high=float(ci.high), d_z=out["diff"] / sd)
    if n >= 3:
        # zero variance: identical runs differ by nothing (p = 1), a constant nonzero shift is certain (p = 0)
        out["p"] = (1.0 if abs(diffs[0]) <= 1e-12 else 0.0) if constant else float(res.pvalue)
        out["test"] = "paired t-test (scipy.stats.ttest_rel)"
    else:
        out["p"] = sign_flip_p(diffs)
        out["test"] = f"exact sign-flip permutation ({2**n} patterns)"
    return out
