"""evaluate_one_pass: `evaluate` with FID + KID + segmentation (generated and real rows) before
and after the one-pass evaluation (evaluators/image_pass.py), interleaved in one process on the
same files. "before": evaluators/evaluate.py as of commit BEFORE (read with `git show`, loaded as
a module of its own beside the current evaluators), where FID read the generated and real images
in its own loops and the segmenter read them (and the label maps) again in its loops; "after":
the current evaluate_images, one pass that decodes each file once. The reference cache is
emptied before every repeat (cold: the real images are read by both). N = 64 synthetic images at
64x64 (--quick: 16), batch 16; the segmenter is a cheap fixed rule (red channel // 26) so that
what differs - decoding and batching - is not hidden behind a large network; Inception: seeded
architecture (timing only). The metric values of both sides are checked equal."""
from __future__ import annotations

DESCRIPTION = "evaluate FID+KID+mIoU: separate loops (before) vs one pass (after)"
DEVICES = ("cpu", "cuda")
DEFAULT = False
BEFORE = "d1cd135ac7079fcd079cd3cd3ac923b0eaa101b1"   # the last commit with separate loops
SEGMENTER = "bench-rule"


def _old_evaluate():
    """evaluators/evaluate.py at BEFORE as module ``evaluators._evaluate_before``."""
    import importlib.util
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    try:
        source = subprocess.run(["git", "show", f"{BEFORE}:evaluators/evaluate.py"], cwd=root,
                                check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"evaluate_one_pass needs the git history (commit {BEFORE[:12]}) to "
                           f"load the former evaluate.py: {exc}") from None
    name = "evaluators._evaluate_before"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"<{BEFORE[:12]}:evaluators/evaluate.py>", "exec"), module.__dict__)
    return module


def _register_segmenter():
    import torch

    from evaluators.segmenters import SEGMENTERS, Segmenter, SegmenterEntry

    class Rule(Segmenter):
        name = SEGMENTER
        label_space = "synthetic"
        num_classes = 10

        @torch.no_grad()
        def predict(self, images, out_size):
            ids = (images[:, 0].long() // 26).clamp(max=9)
            return torch.nn.functional.interpolate(ids[:, None].float(), size=tuple(out_size),
                                                   mode="nearest")[:, 0].long()

    def build(weights=None, device="cpu", **options):
        return Rule().eval()
    SEGMENTERS.add(SEGMENTER, SegmenterEntry(name=SEGMENTER, label_space="synthetic",
                                             description="bench rule", build=build,
                                             identity={"rule": "red // 26"}), "bench")


def run(ctx):
    import os
    import shutil
    import tempfile
    from pathlib import Path

    import yaml

    from bench.inputs import offline_harness
    from bench.measure import combine, measure
    n, size, batch = (16, 64, 16) if ctx.quick else (64, 64, 16)
    with tempfile.TemporaryDirectory(prefix="bench-onepass-") as tmp:
        tmp = Path(tmp)
        with offline_harness(tmp) as ref:
            try:
                _register_segmenter()
                before = _old_evaluate()
                from evaluators.evaluate import evaluate_images
                from evaluators.protocol import load_protocol
                from harness.core.data.synthetic import SyntheticDataset, SyntheticOptions
                dataset = SyntheticDataset(SyntheticOptions(root=str(tmp / "data"), num_train=2,
                                                            num_val=n, size=size), "val")
                proto = tmp / "bench.yaml"
                proto.write_text(yaml.safe_dump({
                    "name": "bench-one-pass", "dataset": "synthetic", "split": "val",
                    "resolution": [size, size], "num_images": None, "seeds": [0],
                    "fid": {"bootstrap_resamples": 0, "kid_subsets": 10},
                    "segmentation": {"segmenter": SEGMENTER, "label_space": "synthetic",
                                     "real_images": True},
                    "diversity": {"samples_per_map": 2, "maps": 1}}, sort_keys=False))
                protocol = load_protocol(proto)
                from PIL import Image
                generated = tmp / "generated"
                generated.mkdir()
                for r in dataset.records():
                    Image.fromarray(dataset.read_image(r)[:, ::-1]).save(generated / f"{r.key}.png")
                out = {}

                def side(fn, name):
                    def call():
                        out[name] = fn(generated, dataset, protocol, multimodal=False,
                                       device=ctx.device, batch_size=batch, seed=0, progress=False,
                                       method="bench")["metrics"]
                    return call
                old, new = side(before.evaluate_images, "before"), side(evaluate_images, "after")
                clear = lambda: shutil.rmtree(ref, ignore_errors=True)  # noqa: E731
                tb, ta = [], []
                for _ in range(ctx.repeats):   # interleaved: load changes hit both sides alike
                    tb.append(measure(old, device=ctx.device, repeats=1,
                                      warmup=0 if tb else ctx.warmup, before=clear))
                    ta.append(measure(new, device=ctx.device, repeats=1,
                                      warmup=0 if ta else ctx.warmup, before=clear))
            finally:
                from evaluators.segmenters import SEGMENTERS
                SEGMENTERS.reload()
    names = ("fid", "kid", "miou", "accuracy", "real_miou", "real_accuracy")
    equal = all(out["before"][m].get("value") == out["after"][m].get("value") for m in names)
    params = {"images": n, "size": size, "batch_size": batch, "before_commit": BEFORE[:12],
              "metrics": list(names), "segmenter": "rule (red // 26)", "cache": "cold",
              "torch_threads": __import__("torch").get_num_threads(),
              "load_average": [round(x, 2) for x in os.getloadavg()]}
    b, a = combine(tb), combine(ta)
    yield {"variant": "separate_loops (before)", "parameters": params, "timing": b}
    yield {"variant": "one_pass (after)", "parameters": params, "timing": a,
           "metrics_equal": bool(equal), "speedup_vs_before": round(b.median_s / a.median_s, 3)}
