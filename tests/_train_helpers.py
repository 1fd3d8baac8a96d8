"""Helpers for the training-runner tests: tiny configs, worker processes, parameter comparison.

Every test trains the example plugin method (tests/plugin_example, ``example-pix2pix``) on the
built-in synthetic dataset at 16x16 px with 8 training images (generated once per session into
$HARNESS_CACHE). Multi-process runs go through real ``torchrun`` with the gloo backend.

Run as a script, this module is the worker those tests launch (what ``python -m harness train``
does, without the run-directory bookkeeping)::

    python tests/_train_helpers.py CONFIG.yaml RUN_DIR [--no-resume]
    torchrun --nproc_per_node 2 tests/_train_helpers.py CONFIG.yaml RUN_DIR
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
HELPERS = Path(__file__).resolve()
METHOD = "example-pix2pix"

# 8 images of 16x16 px: tiny, but real files through the real dataset code.
DATASET_OVERRIDES = ["dataset.size=16", "dataset.num_train=8", "dataset.num_val=2",
                     "dataset.load_size=16", "dataset.crop_size=16", "dataset.flip=true"]
TRAIN_DEFAULTS = {"batch_size": 2, "epochs_constant": 1, "epochs_decay": 0, "log_every": 1,
                  "sample_every": 0, "checkpoint_every": 1000, "keep_last": 2, "progress": False,
                  "deterministic": True, "device": "cpu", "tensorboard": False}
METHOD_DEFAULTS = {"ngf": 8, "ndf": 8, "g_layers": 2, "d_layers": 2}


def make_cfg(train: dict | None = None, method: dict | None = None, *, dataset: list[str] = (),
             method_name: str = METHOD, size: int = 16):
    """``method_name`` (default: the example plugin, at METHOD_DEFAULTS) on ``size`` px synthetic
    scenes, with TRAIN_DEFAULTS updated by ``train``."""
    from harness.core.config import TrainConfig
    from harness.experiment import load_experiment

    t = {**TRAIN_DEFAULTS, **(train or {})}
    if "tensorboard" not in TrainConfig.__dataclass_fields__:
        t.pop("tensorboard")
    m = {**(METHOD_DEFAULTS if method_name == METHOD else {}), **(method or {})}
    overrides = [o.replace("=16", f"={size}") for o in DATASET_OVERRIDES] + list(dataset)
    overrides += [f"train.{k}={_yaml(v)}" for k, v in t.items()]
    overrides += [f"method.{k}={_yaml(v)}" for k, v in m.items()]
    return load_experiment(method_name, "synthetic", overrides=overrides)


def copy_checkpoint(src: Path, run_dir: Path) -> Path:
    """A new run directory whose only (and 'latest') checkpoint is ``src``: a run interrupted
    right after writing it."""
    import shutil

    d = run_dir / "checkpoints"
    d.mkdir(parents=True)
    for suffix in ("", ".sha256"):
        shutil.copy2(str(src) + suffix, d / (src.name + suffix))
    (d / "latest").write_text(src.name + "\n")
    return d / src.name


def norm_cancelled_biases(method) -> set[str]:
    """'net.key' of conv biases directly followed by an InstanceNorm: their gradient is zero up
    to rounding noise, which Adam's first steps amplify to +-lr, so they legitimately differ
    between equivalent runs (and do not change any output)."""
    from torch import nn

    out = set()
    for net_name, net in method.nets.items():
        for name, child in net.named_modules():
            if not isinstance(child, nn.Sequential):
                continue
            kids = list(child.named_children())
            for (n1, c1), (_, c2) in zip(kids, kids[1:]):
                if isinstance(c1, nn.modules.conv._ConvNd) and c1.bias is not None and \
                        isinstance(c2, nn.InstanceNorm2d):
                    out.add(f"{net_name}.{name + '.' if name else ''}{n1}.bias")
    return out


def _yaml(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def write_cfg(cfg, path: Path) -> Path:
    path.write_text(cfg.to_yaml())
    return path


def worker_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())  # same float maths as this process
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def worker_cmd(cfg_file: Path, run_dir: Path, *, nproc: int = 1, resume: bool = True) -> list[str]:
    tail = [str(HELPERS), str(cfg_file), str(run_dir)] + ([] if resume else ["--no-resume"])
    if nproc == 1:
        return [sys.executable] + tail
    torchrun = Path(sys.executable).with_name("torchrun")
    return [str(torchrun), "--nproc_per_node", str(nproc), "--master_port", str(free_port())] + tail


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_worker(cfg_file: Path, run_dir: Path, *, nproc: int = 1, timeout: float = 120,
               **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(worker_cmd(cfg_file, run_dir, nproc=nproc), cwd=REPO,
                          env=worker_env(**env), capture_output=True, text=True, timeout=timeout)


class Worker:
    """A worker process in its own process group (so a test can signal everything it started),
    with its stderr collected line by line by a thread."""

    def __init__(self, cfg_file: Path, run_dir: Path, *, nproc: int = 1, **env: str) -> None:
        import threading

        self.proc = subprocess.Popen(worker_cmd(cfg_file, run_dir, nproc=nproc), cwd=REPO,
                                     env=worker_env(**env), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, marker: str, count: int = 1, timeout: float = 120) -> list[str]:
        """The first ``count`` stderr lines containing ``marker`` (kills the worker on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                hits = [line for line in self.lines if marker in line]
                if len(hits) >= count:
                    return hits[:count]
                left = deadline - time.monotonic()
                if left <= 0 or (not self._reader.is_alive() and self.proc.poll() is not None):
                    break
                self._changed.wait(timeout=min(left, 0.5))
        self.cleanup()
        raise AssertionError(f"worker printed {marker!r} {len(hits)}/{count} times; stderr:\n"
                             + self.stderr)

    def wait(self, timeout: float = 90) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return rc

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the worker's process group and wait for the launcher to end."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)

    def cleanup(self) -> None:
        """Stop whatever still runs: SIGTERM first (torchrun then stops its workers, which live
        in their own sessions), SIGKILL if that is not enough."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            self.kill(signal.SIGKILL)
        self._reader.join(timeout=10)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode


def paused_pids(lines: list[str]) -> list[int]:
    """Worker pids from HARNESS_TEST_PAUSED lines (torchrun starts workers in new sessions)."""
    return [int(line.rsplit("pid=", 1)[1].split()[0]) for line in lines]


def kill_pids(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def checkpoint_params(path: Path) -> dict[str, torch.Tensor]:
    """Every network parameter/buffer of a checkpoint, as 'net.key' -> tensor."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    out = {}
    for net, sd in state["method"]["state"]["networks"].items():
        for k, v in sd.items():
            out[f"{net}.{k}"] = v
    return out


def optimizer_state(path: Path) -> dict[str, dict]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["method"]["state"]["optimizers"]


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                 exclude: set[str] = frozenset()) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a
               if a[k].numel() and k not in exclude)


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------------------------
def _main(argv: list[str]) -> int:
    from harness.experiment import load_resolved
    from harness.train import TrainingError, train

    cfg_file, run_dir = Path(argv[0]), Path(argv[1])
    cfg = load_resolved(cfg_file)
    try:
        result = train(cfg, run_dir, resume="--no-resume" not in argv, progress=False)
    except TrainingError as exc:
        sys.stderr.write(f"TRAINING ERROR: {exc}\n")
        return exc.exit_code
    finally:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"step": result.step, "checkpoint": str(result.checkpoint),
                          "resumed_from": result.resumed_from, "summary": result.summary}))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(_main(sys.argv[1:]))
