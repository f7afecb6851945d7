"""The cloud's model registry (MLflow, embedded), model packaging and model deployment to the fleet."""
