# Copyright (c) Meta Platforms, Inc. and affiliates.
#
# This source code is licensed under the Apache License, Version 2.0
# found in the LICENSE file in the root directory of this source tree.
#
# Trimmed for the sis-harness tests: only the backbones (the original hubconf.py of
# facebookresearch/dinov2 @ b8931f7 also imports the classifier, depth and dino.txt heads).

from dinov2.hub.backbones import dinov2_vitb14, dinov2_vitg14, dinov2_vitl14, dinov2_vits14

dependencies = ["torch"]
