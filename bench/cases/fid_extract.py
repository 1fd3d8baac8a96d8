"""fid_extract: FID feature extraction (Inception pool3, 2048-d) of a folder of PNG files through
the harness (evaluators.fid: ImageFilesDataset + extract_features) and through torch-fidelity
called directly (torch_fidelity.utils.extract_featuresdict_from_input_id on the folder), in one
process, interleaved, on the same files and the same weight file. Ratio = direct / harness time
(>= 1: the harness is at least as fast). Features are checked equal (the same numbers).

Two ratios: ``ratio_vs_torch_fidelity`` (median direct time / median harness time) and
``ratio_paired_median`` (the median over repeats of direct_i / harness_i, each pair measured back
to back). On a shared machine whose load drifts, the paired one is the steadier reading. Each call's process
CPU time is recorded too (``cpu_median_s``, bench.measure; ``cpu_ratio_paired_median`` = median
of direct_i / harness_i CPU seconds; records before 2026-12-06 04:20 UTC named it
``cpu_s_median``): CPU time counts the work done, not the time other jobs took the cores, so
it is the reading to trust when the machine is shared."""
from __future__ import annotations

DESCRIPTION = "FID feature extraction: harness vs torch-fidelity direct (ratio)"
DEVICES = ("cpu", "cuda")
DEFAULT = True


def run(ctx):
    import statistics
    import tempfile
    from pathlib import Path

    import torch
    import torch_fidelity
    from torch_fidelity.utils import extract_featuresdict_from_input_id

    from bench.inputs import image_folder, seeded_inception
    from bench.measure import combine, measure
    from evaluators.fid import ImageFilesDataset, build_extractor, extract_features

    n, size, batch = (8, 64, 8) if ctx.quick else (64, 64, 32)
    with tempfile.TemporaryDirectory(prefix="bench-fid-") as tmp:
        tmp = Path(tmp)
        paths = image_folder(tmp / "images", n, size)
        weights = seeded_inception(tmp / "weights" / "inception.pth")
        extractor = build_extractor(weights, ctx.device)
        cuda = ctx.device == "cuda"
        out = {}

        def harness():
            out["harness"] = extract_features(ImageFilesDataset(paths), extractor,
                                              batch_size=batch, device=ctx.device)

        def direct():
            out["direct"] = extract_featuresdict_from_input_id(
                1, extractor, input1=str(tmp / "images"), batch_size=batch, cuda=cuda,
                save_cpu_ram=not cuda, verbose=False)["2048"].cpu()
        # interleave the two sides so load changes on a shared machine hit both alike
        th, td = [], []
        for _ in range(ctx.repeats):
            th.append(measure(harness, device=ctx.device, repeats=1, warmup=0 if th else ctx.warmup))
            td.append(measure(direct, device=ctx.device, repeats=1, warmup=0 if td else ctx.warmup))
        same = torch.allclose(out["harness"], out["direct"], rtol=1e-5, atol=1e-5)
        params = {"images": n, "size": size, "batch_size": batch,
                  "torch_fidelity": torch_fidelity.__version__,
                  "weights": "seeded inception-v3-compat architecture"}
        h, d = combine(th), combine(td)
        yield {"variant": "torch_fidelity_direct", "parameters": params, "timing": d,
               "images_per_s": round(n / d.median_s, 3)}
        yield {"variant": "harness", "parameters": params, "timing": h,
               "images_per_s": round(n / h.median_s, 3), "features_equal": bool(same),
               "ratio_vs_torch_fidelity": round(d.median_s / h.median_s, 3),
               "ratio_paired_median": round(statistics.median(
                   a.median_s / b.median_s for a, b in zip(td, th)), 3),
               "cpu_ratio_paired_median": round(statistics.median(
                   a.cpu_median_s / b.cpu_median_s for a, b in zip(td, th)), 3)}

