"""A warm start for the tests' CLI runs: one interpreter imports the heavy third-party stack once (torch,
Lightning, torchmetrics, Hydra, scipy, matplotlib: about 4 s of a 2-core machine per `python train.py`), then
forks one child per run. Each child is a new process that runs the script as ``python <script> <args>`` would
(``__main__``, its argv, cwd, environment, stdio, exit status, atexit handlers; an uncaught exception prints its
traceback and exits 1); only those imports were done before the fork. upsample_zoo itself is imported by the
child, from the current source.

Used by ``tests/helpers/cli.run_cli`` (never imported): ``{"ready": ...}`` first, then one JSON request per line on
stdin, ``{"pid": ...}`` and then ``{"rc": ...}`` back on stdout; EOF on stdin ends the server."""

import importlib
import json
import os
import sys

# What every `python train.py` run imports anyway (-X importtime), and whose import neither reads what differs
# between runs nor depends on what the run did before: nothing of the project or the tests. Not Lightning: it adds
# its own console handler when it is imported before the job's logging is configured (then its lines would skip
# the job's train.log). (torchmetrics imports matplotlib.pyplot, which picks no backend: the project's
# matplotlib.use("Agg") still decides, as in a cold run.)
PREIMPORT = ("numpy", "torch", "hydra", "omegaconf", "scipy.stats", "torchvision", "torchmetrics.image.fid",
             "matplotlib", "PIL.Image", "rich", "filelock")


def _reply(obj: dict) -> None:
    os.write(1, (json.dumps(obj) + "\n").encode())


def _requests():
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = os.read(0, 65536)
            if not chunk:
                return
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        yield json.loads(line)


def serve() -> dict | None:
    """The server loop. Returns in a forked child (its request), or None when the tests are done."""
    del sys.path[0]  # this folder: no module of tests/helpers may shadow a library's import
    for name in PREIMPORT:
        importlib.import_module(name)
    _reply({"ready": os.getpid(), "path": sys.path, "modules": sorted({m.split(".")[0] for m in sys.modules})})
    for req in _requests():
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            return req
        _reply({"pid": pid})
        _, status = os.waitpid(pid, 0)
        _reply({"rc": os.waitstatus_to_exitcode(status)})
    return None


def become(req: dict) -> str:
    """In the child: the process state of `python <script> <args>` started with req's cwd, env and stdio."""
    import random

    import numpy as np

    for fd, (path, flags) in enumerate([(os.devnull, os.O_RDONLY), (req["stdout"], os.O_WRONLY | os.O_CREAT),
                                        (req["stderr"], os.O_WRONLY | os.O_CREAT)]):
        new = os.open(path, flags, 0o600)
        os.dup2(new, fd)
        os.close(new)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    sys.argv = [req["script"], *req["args"]]
    # as for `python <script>`: its folder first, then PYTHONPATH's entries (the client's probe), then the rest
    sys.path[:] = [os.path.dirname(req["script"]), *req.get("path", sys.path)]
    random.seed()  # a new process draws fresh OS entropy
    np.random.seed()
    return req["script"]


if __name__ == "__main__":
    job = serve()
    if job is None:
        sys.exit(0)
    script = become(job)
    del job
    import runpy

    runpy.run_path(script, run_name="__main__")
