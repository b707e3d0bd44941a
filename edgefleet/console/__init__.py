"""``edgefleet console``: the shop team's web page for assets, purges and the fleet.

Layers, inside out: ``sessions`` (sign-in, CSRF; pure), ``fleet_view`` (where the edges are),
``stats`` (per-edge numbers and the last hour's history), ``origin_client`` and ``purges`` (adapters to the
origin's upload API and the purge bus), ``pages`` (HTML), ``app`` (routes and the security boundary).
"""
