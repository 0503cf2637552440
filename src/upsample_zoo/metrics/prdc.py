"""Precision, recall, density and coverage of generated features against real ones.

FID folds "bad samples" and "missing modes" into one number; these split them, from the same Inception
features. Each real (generated) sample gets a ball reaching its k-th nearest real (generated) neighbour,
itself left out; distances are Euclidean.

- **precision** (Kynkäänniemi et al., NeurIPS 2019, k = 3): the share of generated samples inside some
  real ball: how many samples look real.
- **recall** (same, k = 3): the share of real samples inside some generated ball: how much of the real
  distribution the generator covers.
- **density** (Naeem et al., ICML 2020, k = 5): the mean number of real balls holding a generated sample,
  divided by k: about 1 when the two distributions match, above 1 where samples crowd the real modes.
- **coverage** (same, k = 5): the share of real samples whose ball holds at least one generated sample:
  recall without the generated balls, so that outliers among the generated samples cannot inflate it.
"""

from __future__ import annotations

import torch

from upsample_zoo.metrics.facts import MAX, MetricFact

CHUNK = 2048
# a ball holds the points at its radius: d(a, b) and d(b, a) come from different matrix products and can
# differ in the last bits, which would drop a ball's own k-th neighbour
SLACK = 1 + 1e-9
K_PRECISION_RECALL = 3
K_DENSITY_COVERAGE = 5
FACTS = {  # what precision_recall_density_coverage returns (no class of its own: one function)
    "precision": MetricFact(MAX, "precision", "share of generated samples inside a real k=3 ball (Kynkäänniemi 2019)"),
    "recall": MetricFact(MAX, "recall", "share of real samples inside a generated k=3 ball (Kynkäänniemi 2019)"),
    "density": MetricFact(MAX, "density", "mean count of real k=5 balls holding a generated sample / k (Naeem 2020)"),
    "coverage": MetricFact(MAX, "coverage", "share of real k=5 balls holding a generated sample (Naeem 2020)"),
}


def kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    if x.shape[0] <= k:
        raise ValueError(f"a k-NN ball with k = {k} needs more than {k} samples, got {x.shape[0]}")
    out = []
    for start in range(0, x.shape[0], CHUNK):
        d = torch.cdist(x[start : start + CHUNK], x)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # column 0 is the point itself
    return torch.cat(out)


def _inside_counts(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """For each point: how many balls (centres[j], radii[j]) hold it."""
    counts = []
    for start in range(0, points.shape[0], CHUNK):
        d = torch.cdist(points[start : start + CHUNK], centres)
        counts.append((d <= SLACK * radii[None, :]).sum(1))
    return torch.cat(counts)


def precision_recall_density_coverage(real: torch.Tensor, fake: torch.Tensor, k_pr: int = K_PRECISION_RECALL,
                                      k_dc: int = K_DENSITY_COVERAGE) -> dict[str, float]:
    real, fake = real.to(torch.float64), fake.to(torch.float64)
    r_real, r_fake = kth_neighbour_radius(real, k_pr), kth_neighbour_radius(fake, k_pr)
    precision = (_inside_counts(fake, real, r_real) > 0).double().mean()
    recall = (_inside_counts(real, fake, r_fake) > 0).double().mean()
    r_real_dc = kth_neighbour_radius(real, k_dc)
    density = _inside_counts(fake, real, r_real_dc).double().sum() / (k_dc * fake.shape[0])
    nearest_fake = torch.cat([torch.cdist(real[s : s + CHUNK], fake).min(1).values
                              for s in range(0, real.shape[0], CHUNK)])
    coverage = (nearest_fake <= SLACK * r_real_dc).double().mean()
    return {"precision": float(precision), "recall": float(recall), "density": float(density),
            "coverage": float(coverage)}
