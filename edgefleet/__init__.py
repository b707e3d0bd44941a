"""edgefleet: CDN edge fleets for e-commerce on Kubernetes (shared definitions and the CLI)."""
