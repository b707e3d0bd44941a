"""Real parts for tests and local poking: the Kubernetes test control plane and friends."""
