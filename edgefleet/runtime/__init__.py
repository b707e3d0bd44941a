"""The local runtime: the same fleet as processes on one machine (``edgefleet up``)."""
