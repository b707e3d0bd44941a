"""Edge autoscaling: a pure decision function and metric sources (Prometheus, direct scrape)."""
