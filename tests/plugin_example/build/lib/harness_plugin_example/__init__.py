"""A tiny third-party method for the harness, registered through the `harness.methods` entry point."""
from harness_plugin_example.method import ExamplePix2Pix

__all__ = ["ExamplePix2Pix"]
__version__ = "0.1.0"
