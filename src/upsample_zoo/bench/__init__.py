"""``upsample-zoo bench [--quick] [--out DIR]``: where the time goes, as ratios measured in one run.

Absolute times on a shared CPU are noise; ratios of two things measured side by side (interleaved, in
the same process, minutes apart at most) are not. Every figure is the median of several timed repeats
after a warm-up, shown with its spread (min-max over the repeats). Rows:

1. **Upsamplers**: forward+backward of every ``configs/upsampler/*.yaml`` at 64 -> 32 channels, 64x64 input
   (128x128 output), batch 16: time, FLOPs (``torch.utils.flop_counter``: convolutions and matmuls, 2 per
   multiply-add), params, achieved GFLOP/s and its ratio to the fp32 matmul peak measured in the same run.
2. **Framework overhead**: the Lightning task's training-step throughput / a plain PyTorch loop's (same model,
   batch, optimizer, data in memory; progress bar, logger, checkpointing and model summary off), both tasks,
   from interleaved blocks of steps. Target >= 0.97.
3. **Data pipeline**: train-loader throughput at the configured ``num_workers`` / training-step consumption,
   both tasks, synthetic and image-folder data. Target >= 3.
4. **FID**: the project's extraction path (``build_fid_metric``) / torchmetrics' default path, same network
   and images, features equal within 1e-4; a second FID run with cached real statistics / the first;
   Inception GFLOP/s / matmul peak; and (full mode) the single ideas measured one by one.
5. **Checkerboard metric**: its cost as a fraction of a segmentation test epoch (measured), and of the GAN's
   (composed from measured parts). Target < 1%.
6. **Scaling**: U-Net training-epoch time against the number of images and the image side, with the
   fitted log-log exponent (expect 1 and 2).
7. **Sweep throughput**: 4 short GAN jobs (full mode) as one sweep with ``hydra/launcher=joblib``
   (n_jobs=2, one torch thread per job) / the same sweep run sequentially at torch's default threads, wall time of
   the whole command; and where the time goes: per-job wall and fit time from each job's results.json, the
   per-job cost of giving up the second thread, and the time outside the jobs (start-up, imports, workers).

Writes ``bench.md`` and ``bench.json`` (atomically) into ``--out`` (default ``logs/bench``). Progress goes to
stderr; stdout gets the markdown and, as its last line, one JSON object with the headline ratios.
``--quick`` uses smaller sizes (the same code paths), for a check in minutes.

Threads (``--threads``, default ``auto``): torch's default on an idle machine, else the cores that the load
average leaves free (at least 1). With two threads on two busy cores, every parallel region waits for a
descheduled thread and steps run 5-40x slower (row 2 shows it), so the figures would measure the neighbours.
On a GPU (used when available) timings are synchronized and the same rows run on the device.

Modules: ``settings`` (sizes per mode), ``measure`` (statistics, timers, formatting), ``environment`` (machine,
threads, matmul peak), ``workloads`` (configs, models, the plain loop, interleaved fits), one module per row
(``upsamplers``, ``overhead``, ``data``, ``fid``, ``checkerboard``, ``scaling``, ``sweep``: each a ``run`` that
returns a dataclass and a ``render`` that gives its markdown lines), ``report`` (bench.json, headline, bench.md)
and ``cli`` (``main``).
"""

from upsample_zoo.bench.cli import main

__all__ = ["main"]
