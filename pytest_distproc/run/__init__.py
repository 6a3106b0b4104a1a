"""Where a run's history comes from: our coordinator's loop, a user's coordinator through the adapter,
and the result model (:class:`~pytest_distproc.run.model.Run`) every checker and report reads."""
