"""Using trained models: prediction on new videos from a run's inference bundle."""
