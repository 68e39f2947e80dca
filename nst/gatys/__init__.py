"""The per-image optimizer of Gatys et al. (a LightningModule), its multi-scale driver and initial images."""
