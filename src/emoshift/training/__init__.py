"""Training: ``train(cfg)``, the LightningModule, augmentation and distillation."""
