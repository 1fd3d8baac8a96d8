"""One pass over the evaluated images: every file is decoded once and fed to every consumer.

FID/KID (Inception), the segmenter (generated and real rows) and each feature-space extractor
(DINOv2, CLIP, VGG16) all read the same per-key images: the generated image, the real image
resized to the generation size, and the ground-truth label map. :func:`run_pass` walks this
rank's share of the keys (:func:`evaluators.sharding.shard_indices`) in chunks, decodes each
image of a chunk once, and hands the decoded uint8 tensors of the chunk to every consumer that
asked for them (:class:`Consumer`). Nothing is decoded that no consumer wants: with a warm
reference cache no consumer asks for the real images, so none is read.

Exact numbers: a chunk holds a whole number of batches (:func:`chunk_size`), and every consumer
batches as its own loop did over the whole set (Inception / feature extractors: torch-fidelity's
loop over each chunk, batch boundaries unchanged; the segmenter: :class:`evaluators.segmentation`
batching continued across chunks by :class:`StreamBatches`), so every network sees the same
batches as before and the features / predictions are bit-identical.

Decoding of the next chunk runs in one background thread while the consumers work on the current
one (a queue bounded to ``prefetch`` chunks; decoding is PIL/numpy work that releases the GIL);
the consumers run in the calling thread, in order, so their results do not depend on timing.
"""
from __future__ import annotations

import queue
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.utils.data
from tqdm import tqdm

from evaluators.sharding import shard_indices

GENERATED, REAL, LABELS = "generated", "real", "labels"
# Decoded uint8 images one chunk may hold per image set (bounds memory at any resolution).
CHUNK_BYTES = 128 * 2 ** 20


@dataclass
class Chunk:
    """Consecutive items of this rank's share: ``indices`` into the evaluated keys, and the
    decoded data the consumers asked for (None where nobody did)."""
    indices: list[int]
    generated: list[torch.Tensor] | None = None   # uint8 [3, H, W]
    real: list[torch.Tensor] | None = None        # uint8 [3, H, W] at the generation size
    labels: list[torch.Tensor] | None = None      # int64 [H, W] evaluation ids


class Consumer:
    """One user of the pass. ``needs``: which of GENERATED / REAL / LABELS it reads."""
    name = "consumer"
    needs: frozenset = frozenset()

    def feed(self, chunk: Chunk) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Called once after the last chunk (flush what is still buffered)."""


def chunk_size(batch_size: int, size_hw: Sequence[int], budget: int | None = None) -> int:
    """Images per chunk: a whole number of batches, about ``budget`` (default
    :data:`CHUNK_BYTES`) bytes of uint8 RGB."""
    budget = CHUNK_BYTES if budget is None else int(budget)
    batch_size = max(1, int(batch_size))
    per_image = 3 * int(size_hw[0]) * int(size_hw[1])
    return max(1, budget // (per_image * batch_size)) * batch_size


def run_pass(run, consumers: Sequence[Consumer], *, chunk: int | None = None,
             prefetch: int = 1, label: Callable[[int], torch.Tensor] | None = None) -> int:
    """Feed this rank's share of ``run``'s images to ``consumers``, each decoded once.

    ``run``: an ``evaluate._Run`` (its ``generated_image(i)`` / ``real_image(i)`` decode);
    ``label(i)``: the ground truth of item i (for consumers needing LABELS). Returns the number
    of items this rank passed through.
    """
    consumers = [c for c in consumers if c is not None]
    needs = set().union(*(c.needs for c in consumers)) if consumers else set()
    if not needs:
        for c in consumers:
            c.finish()
        return 0
    if LABELS in needs and label is None:
        raise ValueError("a consumer needs label maps but run_pass got no label reader")
    idx = shard_indices(len(run.keys), run.dist)
    size = chunk or chunk_size(run.batch_size, run.protocol.resolution_hw)
    parts = [idx[s:s + size] for s in range(0, len(idx), size)]

    def decode(part: list[int]) -> Chunk:
        return Chunk(part,
                     [run.generated_image(i) for i in part] if GENERATED in needs else None,
                     [run.real_image(i) for i in part] if REAL in needs else None,
                     [label(i) for i in part] if LABELS in needs else None)

    if run.progress:
        what = " + ".join(sorted(needs))
        tqdm.write(f"[eval] one pass over {len(run.keys)} images ({what}): "
                   f"{', '.join(c.name for c in consumers)}", file=sys.stderr)
    bar = tqdm(total=len(idx), desc="[eval] images", unit="img", disable=not run.progress,
               leave=False)
    with bar:
        for ch in _decoded(parts, decode, prefetch):
            for c in consumers:
                c.feed(ch)
            bar.update(len(ch.indices))
    for c in consumers:
        c.finish()
    return len(idx)


_DONE = object()


def _decoded(parts: list[list[int]], decode: Callable[[list[int]], Chunk],
             prefetch: int) -> Iterator[Chunk]:
    """``decode(part)`` of every part, in order; up to ``prefetch`` chunks decoded ahead in a
    background thread (0: decode in the calling thread)."""
    if prefetch <= 0 or len(parts) <= 1:
        for part in parts:
            yield decode(part)
        return
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce() -> None:
        try:
            for part in parts:
                item = decode(part)
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:   # handed to the consumer thread and raised there
            q.put(exc)

    worker = threading.Thread(target=produce, name="eval-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # A consumer failed (or the generator was closed): let the producer end, then join it.
        stop.set()
        while worker.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


class Decoded(torch.utils.data.Dataset):
    """Already decoded uint8 [3,H,W] images as the Dataset torch-fidelity's loop takes."""
    in_memory = True   # extract loops need no DataLoader worker processes to read it

    def __init__(self, images: Sequence[torch.Tensor]) -> None:
        self.images = list(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


class FeatureRows(Consumer):
    """Rows of a feature extractor for one image set (GENERATED or REAL), this rank's share,
    gathered in key order by :meth:`gathered`. ``extract(images)``: [k, D] rows of a uint8
    image Dataset, called once per chunk (a chunk is a whole number of batches, so the
    extractor's batches are those of one loop over the whole set)."""

    def __init__(self, name: str, source: str,
                 extract: Callable[[torch.utils.data.Dataset], torch.Tensor]) -> None:
        self.name, self.source, self.needs = name, source, frozenset({source})
        self.extract = extract
        self.indices: list[int] = []
        self.rows: list[torch.Tensor] = []

    def feed(self, chunk: Chunk) -> None:
        self.indices.extend(chunk.indices)
        self.rows.append(self.extract(Decoded(getattr(chunk, self.source))))

    def gathered(self, run) -> torch.Tensor:
        """[N, D] rows of every rank in key order (``run``: evaluate._Run)."""
        from evaluators.sharding import gather_rows
        rows = torch.cat(self.rows) if self.rows else torch.empty(0, 0)
        return gather_rows(self.indices, rows, len(run.keys), run.dist)


class StreamBatches:
    """The batches :func:`evaluators.segmentation._batches` makes of a whole sequence, made
    from the sequence arriving in pieces: :meth:`push` returns the batches that are complete
    (the last one is held back until the next item shows whether it continues), :meth:`flush`
    the rest."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.pending: list = []

    def _split(self) -> list[list]:
        # the rule of segmentation._batches: a batch ends when it is full or the next item's
        # image or label size differs (COCO / ADE20K sizes vary per image)
        out: list[list] = []
        for item in self.pending:
            if out and not (len(out[-1]) < self.batch_size
                            and item[0].shape == out[-1][0][0].shape
                            and item[1].shape == out[-1][0][1].shape):
                out.append([])
            if not out:
                out.append([])
            out[-1].append(item)
        return out

    def push(self, items: Iterable) -> list:
        self.pending.extend(items)
        batches = self._split()
        self.pending = batches.pop() if batches else []
        return [item for b in batches for item in b]

    def flush(self) -> list:
        rest, self.pending = self.pending, []
        return rest
