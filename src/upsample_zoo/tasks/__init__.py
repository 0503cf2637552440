"""LightningModules: losses, steps, metric logging, figures."""
