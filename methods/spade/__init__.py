"""SPADE / GauGAN (Park et al., CVPR 2019): registers the method 'spade'."""
from methods.spade.method import SPADE

__all__ = ["SPADE"]
