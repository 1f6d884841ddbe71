"""X-STARS pretraining: DINO self-distillation plus MSAD cross-sensor alignment, from the tile store."""
