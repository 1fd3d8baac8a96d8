"""Building blocks shared by the SPADE-family methods (norms, losses, encoder, init)."""
