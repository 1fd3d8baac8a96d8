"""CC-FPSE (Liu et al., NeurIPS 2019): layout-to-image conditional convolutions + FPSE discriminator.

Modules, in the order of the paper's figure: ``label_pyramid`` (weight-prediction feature pyramid),
``conditional_conv`` (memory-lean per-pixel depthwise convolution), ``cc_block`` (conditional-
convolution residual block), ``generator``, ``fpse_discriminator``; ``method`` binds them to the
harness contract and ``official`` maps the released checkpoints.
"""
from methods.ccfpse.method import CCFPSE, CCFPSEConfig

__all__ = ["CCFPSE", "CCFPSEConfig"]
