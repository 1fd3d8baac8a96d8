"""GroupDNet / SMIS (Zhu et al., CVPR 2020): semantically multi-modal image synthesis.

Modules, one concept each: ``schedule`` (decoder widths and group-decreasing schedules, the rule
for any class count), ``cg_norm`` (conditional group normalisation), ``cg_block`` (grouped
residual block), ``generator`` (decoder), ``group_encoder`` (per-class crops and the grouped
encoder), ``method`` (the Method contract and the class-wise code API), ``official_import``
(SMIS checkpoints).
"""
from methods.groupdnet.method import GroupDNet, GroupDNetConfig

__all__ = ["GroupDNet", "GroupDNetConfig"]
