"""The stages of a run, one module each: train -> generate -> evaluate -> record -> leaderboard
(:mod:`harness.stages.pipeline` chains them for the `run` verb), resumable stage by stage.

Each stage is a function of a run directory (:mod:`harness.rundir`) and skips itself when its
output already exists for the same inputs:

- train: the runner resumes from the 'latest' checkpoint; a finished training returns at once;
- generate: skipped when ``samples/<protocol id>/<inference>/manifest.json`` is complete and was
  produced from the same checkpoint (sha256) and the same input data (fingerprint); otherwise
  only missing images are generated (images are deterministic per (seed, key), so a partial set
  is completed exactly), or linked from another protocol's identical set;
- evaluate: skipped when ``metrics.json`` holds ``<protocol id>/<inference>`` for the same
  samples (the manifest's origin is stored in the record).

Every stage first checks that the dataset split it reads is the data the run recorded
(:mod:`harness.data_identity`); a change is an error unless ``allow_data_change``.

Rank 0 owns the run directory's bookkeeping (config.yaml, run.json, metrics.json); every rank
trains, generates and evaluates its shard.

The other verbs' work lives beside them: :mod:`~harness.stages.import_official`,
:mod:`~harness.stages.cluster` (cluster-features), :mod:`~harness.stages.check_data`,
:mod:`~harness.stages.segmenter` (train-segmenter); :mod:`~harness.stages.common` holds what they
share (device, datasets, protocols, run directory preparation, checkpoints).
"""
