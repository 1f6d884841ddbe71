"""Evaluation of pretrained backbones on the tile store: retrieval, probes, segmentation, report."""
