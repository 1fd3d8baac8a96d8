"""The one error type of the data layer, in its own module so that the file readers (imageio) and
the transforms can raise it without importing the dataset base class that uses them."""


class DatasetError(ValueError):
    """Bad dataset layout or file; the message names the path and what was expected."""
