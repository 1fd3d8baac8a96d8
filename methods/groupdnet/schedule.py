"""GroupDNet decoder plans: block widths and group-decreasing schedules.

A plan lists, for every CG-Block, its input / output width and its group number g. Two layouts,
as coded in the official SMIS generators (methods.md §4.6):

``ade20k`` (any class count C; used for ADE20K, COCO-Stuff, synthetic and folder datasets)::

    fc 8C -> 16C (groups C) | head_0 16C -> 16C | G_middle_0 16C -> 32nf | G_middle_1 32nf -> 16nf
    up_0 16nf -> 16nf | up_1 16nf -> 8nf | up_2 8nf -> 4nf | up_3 4nf -> 2nf | conv_img 2nf -> 3
    (+ up_4 2nf -> nf, g 1: built, never called; kept so official checkpoints load)

``cityscapes`` (every width a multiple of C: the CG-Norm gamma / beta convs are grouped by class)::

    fc 8C -> 16nf (groups C) | head_0, G_middle_0, G_middle_1 16nf | up_0 -> 8nf | up_1 -> 4nf
    up_2 -> 2nf | up_3 -> nf | conv_img nf -> 3

Official schedules (head_0 ... up_3): Cityscapes (C 35, ngf 280) 35, 35, 20, 14, 10, 4, 1;
ADE20K (C 151, ngf 64) 151, 16, 16, 8, 4, 2, 1.

THE RULE for any other class count (:func:`derive_groups`, ``ade20k`` layout): the head keeps one
group per class, later blocks take the ADE20K tail (16, 16, 8, 4, 2, 1) capped at p, the largest
power of two not above C::

    groups(C) = (C, min(16, p), min(16, p), min(8, p), min(4, p), min(2, p), 1)

It reproduces ADE20K exactly (C 151 -> p 128), gives COCO-Stuff (C 183) the ADE20K schedule,
never uses more groups than classes (synthetic C 10 -> 10, 8, 8, 8, 4, 2, 1), and is valid for
every C >= 1 and every ngf >= 1: all widths after the head are multiples of 2 nf and the groups are
powers of two dividing them, while the head widths are multiples of C.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

LAYOUTS = ("ade20k", "cityscapes")
BLOCKS = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3")
CODE_CHANNELS = 8            # latent channels per class (official, hard-coded)
OFFICIAL_GROUPS = {
    ("cityscapes", 35): (35, 35, 20, 14, 10, 4, 1),
    ("ade20k", 151): (151, 16, 16, 8, 4, 2, 1),
}
ADE20K_TAIL = (16, 16, 8, 4, 2, 1)


class ScheduleError(ValueError):
    """A requested decoder width cannot be split into the requested groups."""


@dataclass(frozen=True)
class BlockPlan:
    name: str
    fin: int
    fout: int
    groups: int
    used: bool = True        # False: built for the official keys, never called (ADE20K up_4)

    @property
    def fmiddle(self) -> int:
        return min(self.fin, self.fout)


@dataclass(frozen=True)
class DecoderPlan:
    layout: str
    classes: int
    ngf: int
    fc_out: int
    blocks: tuple[BlockPlan, ...]
    conv_img_in: int

    @property
    def groups(self) -> tuple[int, ...]:
        return tuple(b.groups for b in self.blocks if b.used)


def derive_groups(classes: int) -> tuple[int, ...]:
    """The documented rule (module docstring) for the ``ade20k`` layout and any class count."""
    if classes < 1:
        raise ScheduleError(f"GroupDNet needs at least one class, got {classes}")
    p = 2 ** int(math.floor(math.log2(classes)))
    return (classes, *(min(t, p) for t in ADE20K_TAIL[:-1]), 1)


def default_groups(layout: str, classes: int) -> tuple[int, ...]:
    if (layout, classes) in OFFICIAL_GROUPS:
        return OFFICIAL_GROUPS[(layout, classes)]
    if layout == "ade20k":
        return derive_groups(classes)
    raise ScheduleError(
        f"the 'cityscapes' decoder layout has an official schedule only for 35 classes, got "
        f"{classes}: give method.groups explicitly (7 numbers, head_0 ... up_3) or use "
        "method.layout: ade20k, whose schedule is derived for any class count")


def _widths(layout: str, classes: int, ngf: int) -> tuple[int, list[tuple[str, int, int]], int]:
    c, nf = classes, ngf
    if layout == "ade20k":
        return 16 * c, [("head_0", 16 * c, 16 * c), ("G_middle_0", 16 * c, 32 * nf),
                        ("G_middle_1", 32 * nf, 16 * nf), ("up_0", 16 * nf, 16 * nf),
                        ("up_1", 16 * nf, 8 * nf), ("up_2", 8 * nf, 4 * nf),
                        ("up_3", 4 * nf, 2 * nf)], 2 * nf
    return 16 * nf, [("head_0", 16 * nf, 16 * nf), ("G_middle_0", 16 * nf, 16 * nf),
                     ("G_middle_1", 16 * nf, 16 * nf), ("up_0", 16 * nf, 8 * nf),
                     ("up_1", 8 * nf, 4 * nf), ("up_2", 4 * nf, 2 * nf),
                     ("up_3", 2 * nf, nf)], nf


def _problems(layout: str, classes: int, ngf: int, groups: Sequence[int]) -> list[str]:
    fc_out, widths, _ = _widths(layout, classes, ngf)
    out = []
    if fc_out % classes:
        out.append(f"fc output {fc_out} is not a multiple of the {classes} classes")
    for (name, fin, fout), g in zip(widths, groups):
        for what, width in (("input", fin), ("middle", min(fin, fout)), ("output", fout)):
            if width % g:
                out.append(f"{name} {what} width {width} cannot be split into {g} groups")
            # the cityscapes CG-Norm predicts gamma / beta with convs grouped by class
            if layout == "cityscapes" and what != "output" and width % classes:
                out.append(f"{name} {what} width {width} is not a multiple of the {classes} "
                           "classes (cityscapes CG-Norm)")
    return out


def plan_decoder(layout: str, classes: int, ngf: int,
                 groups: Sequence[int] | None = None) -> DecoderPlan:
    """Widths and groups of every block; one :class:`ScheduleError` listing every problem."""
    if layout not in LAYOUTS:
        raise ScheduleError(f"unknown GroupDNet layout {layout!r} ({' | '.join(LAYOUTS)})")
    if ngf < 1:
        raise ScheduleError(f"ngf must be >= 1, got {ngf}")
    groups = tuple(default_groups(layout, classes) if groups is None else groups)
    if len(groups) != len(BLOCKS) or any(int(g) < 1 for g in groups):
        raise ScheduleError(f"method.groups must be {len(BLOCKS)} positive integers "
                            f"({', '.join(BLOCKS)}), got {list(groups)}")
    problems = _problems(layout, classes, ngf, groups)
    if problems:
        hint = ""
        fits = [nf for nf in range(1, 4097) if not _problems(layout, classes, nf, groups)]
        if fits:
            hint = f"; the smallest ngf that fits these groups is {fits[0]}"
        raise ScheduleError(f"GroupDNet '{layout}' decoder with {classes} classes, ngf {ngf} and "
                            f"groups {list(groups)}: " + "; ".join(problems) + hint)
    fc_out, widths, conv_img_in = _widths(layout, classes, ngf)
    blocks = [BlockPlan(name, fin, fout, g) for (name, fin, fout), g in zip(widths, groups)]
    if layout == "ade20k":
        blocks.append(BlockPlan("up_4", 2 * ngf, ngf, 1, used=False))
    return DecoderPlan(layout, classes, ngf, fc_out, tuple(blocks), conv_img_in)
