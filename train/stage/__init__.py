"""Fitting one stage: the Hydra app, data over builds, models, the LightningModule, callbacks, chaining, run records."""
