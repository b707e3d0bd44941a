"""The edgefleet balancer: cache-affine routing with bounded load."""
