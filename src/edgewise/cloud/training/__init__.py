"""Training jobs: the ``training_jobs`` table, its service and REST routes, and the :class:`TrainingWorker` that
runs each job as a subprocess and registers the model it produces."""
