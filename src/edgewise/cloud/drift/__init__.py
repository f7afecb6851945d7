"""Drift monitoring in the cloud: capture records compared with each model version's training reference, drift
confirmed over consecutive checks, retraining that proposes a ``challenger``, and promotion to ``champion``."""
