"""The comparison's rows as data: comparison.csv, and a wandb.Table."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

from upsample_zoo.report.comparison import Comparison

# n_ok: one ok run per seed; n_superseded: older ok runs of those seeds, not counted; n_runs: all of them.
# d_z_80_holm / d_z_80_raw: the smallest |d_z| the paired t-test detects with 80% power at alpha / k and alpha.
CSV_FIELDS = ["task", "data", "variant", "upsampler", "metric", "direction", "n_ok", "n_failed", "n_superseded",
              "n_runs", "mean", "std", "ci95_low", "ci95_high", "seeds", "baseline", "n_pairs", "diff_mean",
              "diff_ci95_low", "diff_ci95_high", "d_z", "p_value", "p_holm", "p_min", "test", "significant",
              "d_z_80_holm", "d_z_80_raw"]


def render_csv(cmp: Comparison) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in cmp.rows:
        w.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()})
    return buf.getvalue()


def log_wandb(cmp: Comparison, out_dir: Path, project: str = "upsample-zoo") -> Path:
    """Log the comparison (the CSV rows) as a wandb.Table; offline unless WANDB_API_KEY is set."""
    if not os.environ.get("WANDB_API_KEY"):
        os.environ["WANDB_MODE"] = "offline"
    import wandb

    columns = list(CSV_FIELDS)
    data = [[(None if isinstance(r[c], float) and not math.isfinite(r[c]) else r[c]) for c in columns]
            for r in cmp.rows]
    run = wandb.init(project=project, dir=str(out_dir), job_type="compare", name=f"compare_{out_dir.name}",
                     config={"paths": cmp.paths, "baseline": cmp.baseline, "alpha": cmp.alpha}, reinit=True)
    try:
        run.log({"comparison": wandb.Table(columns=columns, data=data)})
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    return run_dir

