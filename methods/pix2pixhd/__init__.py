"""pix2pixHD (Wang et al., CVPR 2018): registers the method 'pix2pixhd'."""
from methods.pix2pixhd.clustering import cluster_features
from methods.pix2pixhd.method import Pix2PixHD

__all__ = ["Pix2PixHD", "cluster_features"]
