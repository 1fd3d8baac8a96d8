"""One training step (G/E update, then D update) of this harness and of the OFFICIAL code
(xh-liu/CC-FPSE, NVlabs/SPADE) at the same configuration, on the same inputs and weights.

The official code is never part of this repository (non-commercial licences): it is imported from
a private checkout named by an environment variable (``BENCH_OFFICIAL_CCFPSE``,
``BENCH_OFFICIAL_SPADE``). To run it on a CPU with a current PyTorch a few runtime substitutions
are made in this process (listed in ``PATCHES`` and recorded with every number); no file of the
checkout is changed and none of its code is copied here.

Weights: the official networks are built and initialised by the official code (seeded), saved as
official checkpoints and loaded into the harness's method through its own importer
(``Method.import_official``), so both sides start from the same numbers; the generator outputs
and the first step's losses are compared before anything is timed.

Functions called in fresh interpreters through bench.isolate:
``compare``  both sides in one process, interleaved steps (the time ratio);
``memory``   one side alone (its own peak RSS).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ENV = {"ccfpse": "BENCH_OFFICIAL_CCFPSE", "spade": "BENCH_OFFICIAL_SPADE"}
REPOS = {"ccfpse": "xh-liu/CC-FPSE", "spade": "NVlabs/SPADE"}
# the commits these substitutions were written against (a checkout at another commit still runs;
# the record carries the commit found)
KNOWN_COMMITS = {"ccfpse": "5619e6321abb3ef498f58d7475b5dabe16dae290",
                 "spade": "fecacc920c1367a038995c45a39c15f6521ca64f"}
COMMIT_FILE = "OFFICIAL_COMMIT"   # for checkouts made with `git archive` (no .git folder)

PATCHES = {
    "ccfpse": [
        "util/util.py imports dill (only for save_obj/load_obj, unused here): where dill is not "
        "installed, sys.modules['dill'] is the standard pickle module",
        "models.networks.create_network: replaced by one that builds the network and calls its "
        "init_weights(opt.init_type, opt.init_variance) exactly as the original, without the "
        "CUDA assertion and without net.cuda(opt.gpu) (CPU run)",
        "the encoder netE is built with a copy of opt whose crop_size is 256 when crop_size < "
        "256: the official ConvEncoder always resizes its input to 256x256 but adds its 6th "
        "layer only when crop_size >= 256, so below 256 its fc layer gets the wrong input size "
        "(crash); at crop_size 256 it is the architecture the harness builds",
        "Pix2PixModel.FloatTensor / ByteTensor and criterionGAN.Tensor (hard-coded "
        "torch.cuda.FloatTensor / ByteTensor) set to torch.FloatTensor / torch.ByteTensor",
        "torch.Tensor.cuda is the identity while an official step runs (preprocess_input moves "
        "the batch with .cuda(opt.gpu))",
        "Pix2PixTrainer's torch.nn.parallel.DistributedDataParallel wrapper (needs a process "
        "group) replaced by a pass-through while the trainer is built: one process, the same "
        "gradients as DDP with world size 1, without DDP's gradient bucketing",
        "torch.optim.Adam, while the trainer is built, is a subclass that turns betas into "
        "floats: the TTUR betas (0, 0.9) mix an int and a float, which torch >= 2.x rejects "
        "('betas must be either both floats or both Tensors'); the same Adam otherwise",
        "options: the train.sh recipe (--netG condconv --netD fpse --lambda_feat 20 --use_vae "
        "--batchSize 1) at the benchmark size and widths, --no_vgg_loss, without --mpdist "
        "(nn.BatchNorm2d instead of nn.SyncBatchNorm: the same computation in one process)",
    ],
    "spade": [
        "util/util.py imports dill (only for save_obj/load_obj, unused here): where dill is not "
        "installed, sys.modules['dill'] is the standard pickle module",
        "models/networks/sync_batchnorm is not in the repository (its README says to copy it from "
        "vacancy/Synchronized-BatchNorm-PyTorch): a stand-in module provides "
        "SynchronizedBatchNorm2d = nn.BatchNorm2d (what the synchronized layer computes on one "
        "device outside DataParallel) and DataParallelWithCallback = nn.DataParallel (unused: "
        "--gpu_ids -1)",
        "options: the official defaults (--netG spade, norm_G spectralspadesyncbatch3x3, "
        "num_D 2, n_layers_D 4, lambda_feat 10, TTUR) at the benchmark size and widths, "
        "--gpu_ids -1 (the official CPU mode), --no_vgg_loss, --batchSize 1",
    ],
}
COMMON_NOTES = [
    "the data loader is outside both steps: the same label / instance / image tensors are given "
    "to both each step; both compute the one-hot map and the instance edges inside the step",
    "VGG perceptual loss off on both sides (no VGG19 weights offline)",
]


class OfficialCodeMissing(RuntimeError):
    """No official checkout was named (or it is not the expected repository)."""


def how_to_get(method: str) -> str:
    var, repo = ENV[method], REPOS[method]
    return (f"set {var} to a private checkout of https://github.com/{repo} (never inside this "
            f"repository: its licence is non-commercial), e.g.\n"
            f"  git clone https://github.com/{repo} /tmp/official-{method} && "
            f"git -C /tmp/official-{method} checkout {KNOWN_COMMITS[method][:7]}\n"
            f"  {var}=/tmp/official-{method} python -m bench official_step\n"
            f"(a copy without .git may hold the commit id in a file named {COMMIT_FILE})")


def official_root(method: str) -> Path:
    var = ENV[method]
    value = os.environ.get(var)
    if not value:
        raise OfficialCodeMissing(f"official_step needs the official {REPOS[method]} code: "
                                  + how_to_get(method))
    root = Path(value).expanduser().resolve()
    if not (root / "models" / "pix2pix_model.py").is_file() or not (root / "options").is_dir():
        raise OfficialCodeMissing(f"{var}={value}: not a checkout of {REPOS[method]} (expected "
                                  f"models/pix2pix_model.py and options/ in it); "
                                  + how_to_get(method))
    return root


def official_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=30)
        if out.returncode == 0 and (root / ".git").exists():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    f = root / COMMIT_FILE
    return f.read_text().strip() if f.is_file() else "unknown"


# ------------------------------------------------------------------------------------------------
# the official side
# ------------------------------------------------------------------------------------------------
def _shim_modules(method: str) -> None:
    try:
        import dill  # noqa: F401
    except ImportError:
        sys.modules["dill"] = pickle
    if method == "spade":
        import torch.nn as nn
        shim = types.ModuleType("models.networks.sync_batchnorm")
        shim.SynchronizedBatchNorm2d = nn.BatchNorm2d
        shim.DataParallelWithCallback = nn.DataParallel
        sys.modules["models.networks.sync_batchnorm"] = shim


def _options(method: str, size: tuple[int, int], widths: dict, label_nc: int, workdir: Path):
    h, w = size
    args = ["--name", "bench", "--checkpoints_dir", str(workdir / "checkpoints"),
            "--dataset_mode", "custom", "--label_dir", str(workdir), "--image_dir", str(workdir),
            "--label_nc", str(label_nc), "--crop_size", str(w), "--load_size", str(w),
            "--aspect_ratio", str(w / h), "--batchSize", "1", "--ngf", str(widths["ngf"]),
            "--ndf", str(widths["ndf"]), "--no_vgg_loss", "--no_flip", "--serial_batches"]
    if method == "ccfpse":
        args += ["--netG", "condconv", "--netD", "fpse", "--lambda_feat", "20", "--use_vae"]
    else:
        args += ["--netG", "spade", "--gpu_ids", "-1"]
    from options.train_options import TrainOptions
    saved = sys.argv
    sys.argv = ["train.py", *args]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            opt = TrainOptions().parse()
    finally:
        sys.argv = saved
    if method == "ccfpse":
        opt.gpu = 0
    return opt


@contextlib.contextmanager
def _adam_with_float_betas():
    import torch
    original = torch.optim.Adam

    class Adam(original):
        def __init__(self, params, *args, betas=(0.9, 0.999), **kwargs):
            super().__init__(params, *args, betas=tuple(float(b) for b in betas), **kwargs)
    torch.optim.Adam = Adam
    try:
        yield
    finally:
        torch.optim.Adam = original


class _PassThrough:
    """Stands in for DistributedDataParallel in a one-process run."""

    def __init__(self, module, *args, **kwargs) -> None:
        self.module = module

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)


@contextlib.contextmanager
def _tensor_cuda_is_identity():
    import torch
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def _patch_ccfpse_networks() -> None:
    import models.networks as networks

    def create_network(cls, opt):
        if cls.__name__ == "ConvEncoder" and opt.crop_size < 256:
            opt = argparse.Namespace(**{**vars(opt), "crop_size": 256})
        net = cls(opt)
        net.print_network()
        net.init_weights(opt.init_type, opt.init_variance)
        return net
    networks.create_network = create_network


class OfficialSide:
    """The official Pix2PixTrainer / Pix2PixModel at the benchmark configuration (CPU)."""

    def __init__(self, method: str, root: Path, size, widths: dict, label_nc: int,
                 workdir: Path, seed: int = 0) -> None:
        import torch
        self.method = method
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        _shim_modules(method)
        self.opt = _options(method, size, widths, label_nc, workdir)
        torch.manual_seed(seed)
        with contextlib.redirect_stdout(sys.stderr), _adam_with_float_betas():
            if method == "ccfpse":
                _patch_ccfpse_networks()
                import trainers.pix2pix_trainer as tr
                ddp = torch.nn.parallel.DistributedDataParallel
                torch.nn.parallel.DistributedDataParallel = _PassThrough
                try:
                    self.trainer = tr.Pix2PixTrainer(self.opt)
                finally:
                    torch.nn.parallel.DistributedDataParallel = ddp
                model = self.trainer.pix2pix_model_on_one_gpu
                model.FloatTensor, model.ByteTensor = torch.FloatTensor, torch.ByteTensor
                model.criterionGAN.Tensor = torch.FloatTensor
            else:
                from trainers.pix2pix_trainer import Pix2PixTrainer
                self.trainer = Pix2PixTrainer(self.opt)
        self.model = self.trainer.pix2pix_model_on_one_gpu

    def networks(self) -> dict:
        nets = {"G": self.model.netG, "D": self.model.netD}
        if self.model.netE is not None:
            nets["E"] = self.model.netE
        return nets

    def save(self, directory: Path) -> dict[str, Path]:
        """The official checkpoint files (state_dicts as the official save_network writes)."""
        import torch
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, net in self.networks().items():
            paths[name] = directory / f"latest_net_{name}.pth"
            torch.save(net.state_dict(), paths[name])
        return paths

    def data(self, batch) -> dict:
        return {"label": batch.label.unsqueeze(1).clone(), "instance":
                batch.instance.unsqueeze(1).float(), "image": batch.image.clone()}

    def step(self, data: dict) -> None:
        with _tensor_cuda_is_identity():
            self.trainer.run_generator_one_step(data)
            self.trainer.run_discriminator_one_step(data)

    def losses(self) -> dict[str, float]:
        names = {"KLD": "KLD", "GAN": "G_GAN", "GAN_Feat": "G_feat", "D_Fake": "D_fake",
                 "D_real": "D_real"}
        return {names.get(k, k): float(v.detach().sum()) for k, v in
                self.trainer.get_latest_losses().items()}

    def semantics(self, data: dict):
        import torch
        with _tensor_cuda_is_identity(), torch.no_grad():
            seg, _ = self.model.preprocess_input(dict(data))
        return seg


# ------------------------------------------------------------------------------------------------
# the harness side
# ------------------------------------------------------------------------------------------------
def harness_side(method: str, size, widths: dict, checkpoints: dict[str, Path]):
    from bench.steps import build
    m = build(method, tuple(size), "cpu", **widths)
    report = m.import_official({k: Path(v) for k, v in checkpoints.items()})
    return m, report


def inputs(size, label_nc: int):
    """The benchmark scene; the edge map is dropped so the harness, like the official code,
    computes the instance edges inside the step."""
    from bench.steps import scene_batch
    b = scene_batch(1, tuple(size), label_nc)
    b.edge = None
    return b


def _generator_outputs(method: str, official: OfficialSide, harness, data: dict, batch,
                       seed: int = 1):
    """Both generators in training mode (batch statistics, as in a step; the evaluation-mode
    output of freshly initialised wide CC-FPSE generators overflows to NaN on both sides, since
    the BatchNorm running statistics are still 0 / 1) on the same semantic map and, with the VAE,
    the same z. The spectral-norm power iteration and BatchNorm running statistics advance on
    both sides alike."""
    import torch
    seg_o = official.semantics(data)
    seg_h = harness.semantics(batch.label, batch.edge, batch.instance) if method == "ccfpse" \
        else harness.semantics(batch.label, batch.instance, batch.edge)
    z = None
    if getattr(harness.cfg, "use_vae", False):
        z = torch.randn(1, harness.cfg.z_dim, generator=torch.Generator().manual_seed(seed))
    outs = []
    for net, seg in ((official.model.netG, seg_o), (harness.nets["G"], seg_h)):
        with torch.no_grad():
            outs.append(net(seg, z=z) if z is not None else net(seg))
    if not all(bool(torch.isfinite(o).all()) for o in outs):
        raise RuntimeError(f"{method}: a generator output is not finite; cannot compare")
    return float((seg_o - seg_h).abs().max()), outs[0], outs[1]


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def compare(method: str, size, batch: int, widths: dict, repeats: int, warmup: int,
            checkpoint_dir: str, threads: int = 1, label_nc: int = 8, tolerance: float = 1e-4):
    """Both sides in this process: equality checks, then interleaved steps (ABBA order).

    Returns (harness Timing, extra) where extra holds the official Timing and the checks."""
    import torch

    from bench.measure import Timing
    from bench.steps import step_fn
    if batch != 1:
        raise ValueError("official_step compares batch 1 (the official CC-FPSE recipe)")
    torch.set_num_threads(threads)
    load_before = _loadavg()
    root = official_root(method)
    ckdir = Path(checkpoint_dir)
    official = OfficialSide(method, root, tuple(size), widths, label_nc, ckdir)
    paths = official.save(ckdir / "official")
    harness, report = harness_side(method, size, widths, paths)
    b = inputs(size, label_nc)
    data = official.data(b)
    seg_diff, out_o, out_h = _generator_outputs(method, official, harness, data, b)
    out_diff = float((out_o - out_h).abs().max())
    if not out_diff <= tolerance or seg_diff != 0:
        raise RuntimeError(f"{method}: the generators differ on the same weights and input "
                           f"(max |official - harness| = {out_diff:.3g}, semantic maps differ by "
                           f"{seg_diff}): the comparison would not be like for like")
    h_step = step_fn(harness, b)
    o_step = lambda: official.step(data)  # noqa: E731
    # first step, same seed: the losses (the VAE noise is drawn in the same order) and the
    # generator after the update must agree
    torch.manual_seed(123)
    o_step()
    o_losses = official.losses()
    torch.manual_seed(123)
    h_losses = h_step()
    loss_diff = {k: abs(o_losses[k] - h_losses[k]) for k in h_losses if k in o_losses}
    _, out_o, out_h = _generator_outputs(method, official, harness, data, b)
    after_step_diff = float((out_o - out_h).abs().max())
    for _ in range(max(0, warmup - 1)):
        o_step()
        h_step()
    times = {"official": [], "harness": []}
    sides = {"official": o_step, "harness": h_step}
    for r in range(repeats):
        order = ("official", "harness") if r % 2 == 0 else ("harness", "official")
        for side in order:
            t0 = time.perf_counter()
            sides[side]()
            times[side].append(time.perf_counter() - t0)
    ratios = [o / h for o, h in zip(times["official"], times["harness"])]

    def timing(ts):
        return Timing(statistics.median(ts), min(ts), max(ts), len(ts), warmup,
                      float("nan"), "see separate-process run")
    extra = {
        "official": timing(times["official"]).as_dict(),
        "pairwise_speedup_median": round(statistics.median(ratios), 3),
        "pairwise_speedup_min": round(min(ratios), 3),
        "pairwise_speedup_max": round(max(ratios), 3),
        "generator_max_abs_diff": out_diff,
        "generator_max_abs_diff_after_first_step": after_step_diff,
        "first_step_losses_official": o_losses, "first_step_losses_harness": h_losses,
        "first_step_loss_max_abs_diff": max(loss_diff.values()) if loss_diff else None,
        "import_report": {"loaded": {str(k): v for k, v in report.loaded.items()},
                          "notes": list(report.notes)},
        "official_commit": official_commit(root), "official_path": str(root),
        "threads": threads, "loadavg_before": load_before, "loadavg_after": _loadavg(),
        "parameters_million_official": round(sum(p.numel() for n in official.networks().values()
                                                 for p in n.parameters()) / 1e6, 3),
        "parameters_million_harness": round(sum(p.numel() for p in harness.nets.parameters())
                                            / 1e6, 3),
    }
    return timing(times["harness"]), extra


def memory(method: str, side: str, size, batch: int, widths: dict, repeats: int, warmup: int,
           checkpoint_dir: str, threads: int = 1, label_nc: int = 8):
    """One side alone in this (fresh) process: its steps timed and its peak RSS."""
    import torch

    from bench.measure import measure
    torch.set_num_threads(threads)
    load_before = _loadavg()
    ckdir = Path(checkpoint_dir)
    b = inputs(size, label_nc)
    if side == "official":
        official = OfficialSide(method, official_root(method), tuple(size), widths, label_nc,
                                ckdir / "scratch")
        paths = {k: ckdir / "official" / f"latest_net_{k}.pth" for k in official.networks()}
        for name, net in official.networks().items():   # the weights the comparison used
            net.load_state_dict(torch.load(paths[name], map_location="cpu", weights_only=True))
        data = official.data(b)
        fn = lambda: official.step(data)  # noqa: E731
    elif side == "harness":
        from bench.steps import step_fn
        names = ["G", "D", "E"] if (ckdir / "official" / "latest_net_E.pth").is_file() \
            else ["G", "D"]
        harness, _ = harness_side(method, size, widths,
                                  {k: ckdir / "official" / f"latest_net_{k}.pth" for k in names})
        fn = step_fn(harness, b)
    else:
        raise ValueError(f"side must be 'official' or 'harness', got {side!r}")
    t = measure(fn, device="cpu", repeats=repeats, warmup=warmup)
    return t, {"threads": threads, "loadavg_before": load_before, "loadavg_after": _loadavg(),
               "step_growth_mib": round(t.peak_memory_mib - t.memory_before_mib, 1)}
