"""Evaluators: FID/KID (torch-fidelity), LPIPS diversity (lpips), mIoU / pixel accuracy with
segmenters, all under one hashed protocol; plus the weight-file resolution every network uses."""
