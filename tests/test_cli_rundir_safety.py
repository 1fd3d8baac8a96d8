"""Run directories under stress: concurrent writers (real processes and a real file lock),
import-official's atomic replacement, one-line errors with exit status 2 for a full / read-only /
misplaced runs folder and for broken JSON, and file modes that follow the umask.

The disk-full and read-only cases use real small tmpfs mounts (the tests run as root); where
mounting is not permitted they are skipped with the reason."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.core.io import read_json

from _cli_helpers import REPO, call_main, tiny_protocol

PLUGIN = "example-pix2pix"
DATA = ["--set", "dataset.size=16", "--set", "dataset.num_train=4", "--set", "dataset.num_val=4"]


def train_args(runs: Path, data_root: Path, *extra: str) -> list[str]:
    return ["train", "--method", PLUGIN, "--dataset", "synthetic", "--set", "train.max_steps=1",
            *DATA, "--set", f"dataset.root={data_root}", "--runs-dir", str(runs), "--quiet",
            *extra]


def one_line_error(err: str) -> str:
    """The error, one line (log records such as generate --force's 'replacing ...' warning are
    not part of it)."""
    lines = [x for x in err.strip().splitlines() if not x.startswith("harness: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("rundir-safety")
    return {"root": root, "data": root / "syn"}


@pytest.fixture(scope="module")
def tiny_run(work):
    """A trained 1-step run, created under an explicit umask of 022."""
    old = os.umask(0o022)
    try:
        code, out, err = call_main(*train_args(work["root"] / "runs", work["data"]))
    finally:
        os.umask(old)
    assert code == 0, err
    return Path(json.loads(out)["run_dir"])


@contextmanager
def small_fs(path: Path, size: str, *, read_only: bool = False):
    """A real tmpfs of ``size`` at ``path`` (read-only after mounting when asked)."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: cannot mount a tmpfs at {path} ({r.stderr.strip()}); the "
                    "disk-full / read-only tests need a real small file system (run as root)")
    try:
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(mount: Path, leave_bytes: int) -> None:
    st = os.statvfs(mount)
    free = st.f_bavail * st.f_frsize
    (mount / "filler").write_bytes(b"\0" * max(0, free - leave_bytes))


# --------------------------------------------------------------------------------------------
# Item 6: one writer per run directory
# --------------------------------------------------------------------------------------------
HOLDER = """
import sys, time
from pathlib import Path
from harness.runlock import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    while not Path(sys.argv[2]).exists():
        time.sleep(0.05)
"""


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _wait_for(predicate, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_concurrent_evaluations_wait_for_the_lock_and_all_land(tiny_run, work, tmp_path):
    from evaluators.protocol import load_protocol

    protos = [tiny_protocol(tmp_path, name=f"conc{i}") for i in range(3)]
    release = tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tiny_run), str(release)],
                              stdout=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
    evals = []
    try:
        assert holder.stdout.readline().strip() == "held"
        for i, proto in enumerate(protos):
            log = tmp_path / f"eval{i}.err"
            with open(log, "w") as errf:
                evals.append((log, subprocess.Popen(
                    [sys.executable, "-m", "harness", "evaluate", "--run", str(tiny_run),
                     "--protocol", str(proto), "--quiet"],
                    stdout=subprocess.PIPE, stderr=errf, text=True, env=_env(), cwd=REPO)))
        # Writers that must not wait fail at once with exit status 2, naming run and holder.
        code, out, err = call_main("evaluate", "--run", str(tiny_run), "--protocol",
                                   str(protos[0]), "--no-wait")
        line = one_line_error(err)
        assert code == 2 and out == ""
        assert str(tiny_run) in line and f"pid {holder.pid}" in line and "in use" in line
        code, _, err = call_main(*train_args(work["root"] / "runs", work["data"], "--no-wait"))
        assert code == 2 and f"pid {holder.pid}" in one_line_error(err)
        # The others wait, saying so on stderr (run and holder named) ...
        for log, _ in evals:
            _wait_for(lambda: "waiting for run" in log.read_text(), f"the message in {log}")
            text = log.read_text()
            assert str(tiny_run) in text and f"pid {holder.pid}" in text
        assert all(p.poll() is None for _, p in evals)
        release.touch()
        assert holder.wait(timeout=60) == 0
        # ... then run one after the other: every record lands.
        for log, p in evals:
            p.wait(timeout=300)
            assert p.returncode == 0, log.read_text()
    finally:
        release.touch()
        for _, p in evals + [(None, holder)]:
            if p.poll() is None:
                p.kill()
    evaluations = read_json(tiny_run / "metrics.json")["evaluations"]
    want = {f"{load_protocol(str(p)).id}/random" for p in protos}
    assert want <= set(evaluations)
    stages = read_json(tiny_run / "run.json")["stages"]
    assert all(stages[f"evaluate/{k}"]["status"] == "done" for k in want)


def test_records_survive_concurrent_writers_of_one_metrics_file(tmp_path):
    """write_record is a read-modify-write under its own lock: 4 processes x 20 records each
    into one metrics.json (as `evaluate --images --out` may do) lose none."""
    script = """
import sys
from harness.core.records import write_record
who = sys.argv[2]
for i in range(20):
    write_record(sys.argv[1], {"schema": 1, "protocol": {"id": f"p{who}-{i}"},
                               "inference": None, "metrics": {}})
"""
    target = tmp_path / "shared" / "metrics.json"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(target), str(w)], env=_env(),
                              cwd=REPO) for w in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    keys = set(read_json(target)["evaluations"])
    assert keys == {f"p{w}-{i}/none" for w in range(4) for i in range(20)}


# --------------------------------------------------------------------------------------------
# Item 3: import-official --force replaces atomically
# --------------------------------------------------------------------------------------------
def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_import_official_force_keeps_the_old_run_until_the_new_one_is_complete(tmp_path):
    import torch

    from harness.experiment import load_experiment
    from harness.core.data import build_dataset_from_config
    from methods import METHODS
    from methods.base import Runtime

    sets = ["dataset.num_train=2", "dataset.num_val=2", f"dataset.root={tmp_path / 'syn'}"]
    cfg = load_experiment("spade", "synthetic", overrides=sets)
    val = build_dataset_from_config(cfg, "val", train=False)
    torch.manual_seed(0)
    method = METHODS.get("spade").build(cfg.method.config, val.info, Runtime()).eval()
    files = method.export_official(tmp_path / "released")
    runs = tmp_path / "runs"
    args = ["import-official", "--method", "spade", "--dataset", "synthetic",
            *[a for s in sets for a in ("--set", s)], "--runs-dir", str(runs), "--quiet"]
    code, out, err = call_main(*args, "--checkpoint", f"G={files['G']}")
    assert code == 0, err
    rd = Path(json.loads(out)["run_dir"])
    (rd / "notes.txt").write_text("results of the first import")
    before = _snapshot(rd)

    bad = tmp_path / "bad_net_G.pth"
    torch.save({"not": "a generator"}, bad)
    code, out, err = call_main(*args, "--checkpoint", f"G={bad}", "--force")
    assert code == 2 and out == "" and str(bad) in one_line_error(err)
    assert _snapshot(rd) == before  # the bad file cost nothing
    assert sorted(p.name for p in rd.parent.iterdir()) == [".official.lock", "official"]

    code, out, err = call_main(*args, "--checkpoint", f"G={files['G']}", f"D={files['D']}",
                               "--force")
    assert code == 0, err
    assert json.loads(out)["run_dir"] == str(rd)
    assert not (rd / "notes.txt").exists()  # replaced as a whole
    assert sorted(read_json(rd / "run.json")["stages"]["train"]["files"]) == ["D", "G"]
    assert sorted(p.name for p in rd.parent.iterdir()) == [".official.lock", "official"]


def test_replace_run_puts_the_old_run_back_when_the_swap_fails(tmp_path):
    from harness.core.io import OutputError
    from harness.rundir import RunDir, replace_run

    target = RunDir(tmp_path / "runs" / "synthetic" / "spade" / "official")
    (target.checkpoints).mkdir(parents=True)
    (target.path / "config.yaml").write_text("name: old\n")
    before = _snapshot(target.path)
    missing = RunDir(target.path.parent / ".official.new-1")  # a real failing rename (ENOENT)
    with pytest.raises(OutputError, match="is unchanged"):
        replace_run(missing, target)
    assert _snapshot(target.path) == before
    assert sorted(p.name for p in target.path.parent.iterdir()) == ["official"]


# --------------------------------------------------------------------------------------------
# Item 11: one line and exit status 2, nothing left behind
# --------------------------------------------------------------------------------------------
def test_runs_path_under_a_file(work, tmp_path):
    blocker = tmp_path / "runs-file"
    blocker.write_text("not a folder")
    for runs in (blocker, blocker / "sub"):
        code, out, err = call_main(*train_args(runs, work["data"]))
        line = one_line_error(err)
        assert code == 2 and out == ""
        assert f"{blocker} is a file, not a folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs-file"]


def test_read_only_runs_directory(work, tmp_path):
    with small_fs(tmp_path / "ro", "64k", read_only=True) as mnt:
        code, out, err = call_main(*train_args(mnt / "runs", work["data"]))
        line = one_line_error(err)
        assert code == 2 and str(mnt / "runs") in line and "Read-only file system" in line


def test_disk_full_while_writing_the_checkpoint_leaves_no_stray_run(work, tmp_path):
    with small_fs(tmp_path / "full", "128k") as mnt:  # the checkpoint needs ~250 kB
        code, out, err = call_main(*train_args(mnt, work["data"]))
        line = one_line_error(err)
        assert code == 2 and out == ""
        assert "cannot write checkpoint" in line and str(mnt) in line
        assert "No space left on device" in line
        assert list(mnt.iterdir()) == []  # a failed start leaves no run directory behind


def test_disk_full_while_writing_samples(tmp_path):
    proto = tiny_protocol(tmp_path, name="many")
    with small_fs(tmp_path / "full", "1m") as mnt:
        code, out, err = call_main(*train_args(mnt, tmp_path / "syn", "--set",
                                               "dataset.num_val=48"))
        assert code == 0, err
        rd = Path(json.loads(out)["run_dir"])
        before = _snapshot(rd)
        _fill(mnt, 24 * 1024)  # room for run.json and a few of the 48 PNGs (4 kB pages)
        code, out, err = call_main("generate", "--run", str(rd), "--protocol", str(proto),
                                   "--quiet")
        line = one_line_error(err)
        assert code == 2 and out == ""
        assert "No space left on device" in line and str(rd / "samples") in line
        after = _snapshot(rd)
        assert {k: after[k] for k in before if k != "run.json"} == \
            {k: v for k, v in before.items() if k != "run.json"}  # nothing corrupted
        assert not any(k.endswith("manifest.json") for k in after)
        assert not any(k.endswith(".tmp") for k in after)


def test_dataset_too_small_for_the_batch_is_a_user_error_and_leaves_nothing(work, tmp_path):
    runs = tmp_path / "runs"
    code, out, err = call_main(*train_args(runs, work["data"], "--set", "train.batch_size=8"))
    line = one_line_error(err)
    assert code == 2 and "fewer than one global batch" in line
    assert not runs.exists()


def test_broken_json_files_name_the_file(tiny_run, tmp_path):
    rd = tmp_path / "copy"
    shutil.copytree(tiny_run, rd)
    proto = tiny_protocol(tmp_path, name="bj")
    code, out, err = call_main("evaluate", "--run", str(rd), "--protocol", str(proto), "--quiet")
    assert code == 0, err
    from evaluators.protocol import load_protocol
    manifest = rd / "samples" / load_protocol(str(proto)).id / "random" / "manifest.json"
    for path, text, verb in [(rd / "run.json", '{"stages": {', "generate"),
                             (rd / "run.json", "[1, 2]", "generate"),
                             (manifest, "\x00\x01", "evaluate"),
                             (rd / "metrics.json", '{"schema": 1, "evaluations": ', "evaluate")]:
        good = path.read_bytes()
        path.write_text(text)
        code, out, err = call_main(verb, "--run", str(rd), "--protocol", str(proto), "--force",
                                   "--quiet")
        assert code == 2, (path, code, out, err)
        line = one_line_error(err)
        assert out == "" and str(path) in line, (path, err)
        path.write_bytes(good)


def test_read_only_weights_cache_is_named(tiny_run, tmp_path, monkeypatch):
    """Downloads enabled, cache on a read-only file system: no traceback; FID/KID are recorded
    as skipped with the cache path named (a missing weights file is a skipped metric)."""
    from harness.core.weights import INCEPTION_V3_COMPAT, WeightsUnavailable, resolve

    rd = tmp_path / "copy"
    shutil.copytree(tiny_run, rd)
    proto = tiny_protocol(tmp_path, name="ro")
    with small_fs(tmp_path / "ro", "64k", read_only=True) as mnt:
        monkeypatch.setenv("TORCH_HOME", str(mnt / "torch"))
        monkeypatch.delenv("HARNESS_OFFLINE", raising=False)
        monkeypatch.delenv("HARNESS_WEIGHTS_DIR", raising=False)
        with pytest.raises(WeightsUnavailable, match="Read-only file system") as exc:
            resolve(INCEPTION_V3_COMPAT)
        assert str(mnt / "torch") in str(exc.value)
        code, out, err = call_main("evaluate", "--run", str(rd), "--protocol", str(proto),
                                   "--quiet")
        assert code == 0 and "Traceback" not in err, err
    from evaluators.protocol import load_protocol
    key = f"{load_protocol(str(proto)).id}/random"
    fid = read_json(rd / "metrics.json")["evaluations"][key]["metrics"]["fid"]
    assert fid["status"] == "skipped" and str(mnt / "torch") in fid["reason"]


# --------------------------------------------------------------------------------------------
# Item 12: files follow the umask
# --------------------------------------------------------------------------------------------
def test_files_written_follow_the_umask():
    script = """
import os, sys, tempfile
from pathlib import Path
from harness.core.io import atomic_write_json, atomic_torch_save
d = Path(tempfile.mkdtemp())
out = []
for mask in (0o022, 0o027, 0o077, 0o002):
    os.umask(mask)
    a = atomic_write_json(d / f"a{mask:o}.json", {"x": 1})
    b = atomic_torch_save(d / f"b{mask:o}.pt", {"x": 1})
    out.append([mask, os.stat(a).st_mode & 0o777, os.stat(b).st_mode & 0o777])
print(out)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env=_env(), cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    for mask, json_mode, pt_mode in eval(r.stdout):
        assert json_mode == pt_mode == 0o666 & ~mask, (oct(mask), oct(json_mode), oct(pt_mode))


def test_a_run_directory_written_under_umask_022_is_world_readable(tiny_run):
    modes = {str(p.relative_to(tiny_run)): stat.S_IMODE(p.stat().st_mode)
             for p in tiny_run.rglob("*") if p.is_file()}
    assert "config.yaml" in modes and "run.json" in modes
    assert any(k.startswith("checkpoints/step_") for k in modes)
    assert {k: m for k, m in modes.items() if m != 0o644} == {}
