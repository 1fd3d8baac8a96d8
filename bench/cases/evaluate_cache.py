"""evaluate_cache: `evaluate` of a generated set, cold vs warm reference cache, in one process on
the same files. Cold: the reference cache (<cache>/reference/) is emptied before every repeat, so
the real images' Inception features are extracted again; warm: the cache holds them, and the run
reads no real image (tests/test_eval_warm_cache.py counts the calls). N = 500 images of the
synthetic dataset at 32x32 (--quick: 16), FID + KID (seeded Inception architecture: timing only),
batch 50; LPIPS diversity is not applicable (not multimodal); no segmenter in this protocol (the
segmenter's real-image predictions are cached the same way, tested, not timed here)."""
from __future__ import annotations

DESCRIPTION = "evaluate, cold vs warm reference cache (N = 500 tiny images)"
DEVICES = ("cpu", "cuda")
DEFAULT = True


def run(ctx):
    import shutil
    import tempfile
    from pathlib import Path

    import yaml

    from bench.inputs import offline_harness
    from bench.measure import measure
    n, size = (16, 32) if ctx.quick else (500, 32)
    with tempfile.TemporaryDirectory(prefix="bench-evalcache-") as tmp:
        tmp = Path(tmp)
        with offline_harness(tmp) as ref:
            from evaluators.evaluate import evaluate_images
            from evaluators.protocol import load_protocol
            from harness.core.data.synthetic import SyntheticDataset, SyntheticOptions
            dataset = SyntheticDataset(SyntheticOptions(root=str(tmp / "data"), num_train=2,
                                                        num_val=n, size=size), "val")
            proto = tmp / "bench.yaml"
            proto.write_text(yaml.safe_dump({
                "name": "bench-cache", "dataset": "synthetic", "split": "val",
                "resolution": [size, size], "num_images": None, "seeds": [0],
                "fid": {"bootstrap_resamples": 0, "kid_subsets": 10},
                "segmentation": {"segmenter": None, "label_space": "synthetic"},
                "diversity": {"samples_per_map": 2, "maps": 1}}, sort_keys=False))
            protocol = load_protocol(proto)
            # the "generated" set: the real files themselves (what is measured is the work)
            from PIL import Image
            generated = tmp / "generated"
            generated.mkdir()
            for r in dataset.records():
                Image.fromarray(dataset.read_image(r)).save(generated / f"{r.key}.png")

            def evaluate():
                evaluate_images(generated, dataset, protocol, multimodal=False, device=ctx.device,
                                batch_size=50, seed=0, progress=False, method="bench")

            cold = measure(evaluate, device=ctx.device, repeats=ctx.repeats, warmup=ctx.warmup,
                           before=lambda: shutil.rmtree(ref, ignore_errors=True))
            warm = measure(evaluate, device=ctx.device, repeats=ctx.repeats, warmup=ctx.warmup)
    params = {"images": n, "size": size, "metrics": ["fid", "kid"], "batch_size": 50}
    yield {"variant": "cold", "parameters": params, "timing": cold}
    yield {"variant": "warm", "parameters": params, "timing": warm,
           "speedup_vs_cold": round(cold.median_s / warm.median_s, 3),
           "cpu_speedup_vs_cold": round(cold.cpu_median_s / warm.cpu_median_s, 3)}
