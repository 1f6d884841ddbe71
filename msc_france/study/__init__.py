"""``msc-france study``: an ablation of pretraining presets, chosen on val and reported on test."""
