"""The edgefleet edge: an HTTP/1.1 caching reverse proxy."""
