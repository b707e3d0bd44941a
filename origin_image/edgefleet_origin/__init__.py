"""The edgefleet origin: assets from storage, image variants, uploads and change events.

Pure decisions: ``keys`` (which object names are allowed), ``objects`` (metadata), ``caching`` (cache
headers, the Surrogate-Key scheme), ``ranges``, ``preconditions``, ``variants`` (width and format
selection), ``minio_events`` (bucket notifications), ``imaging`` (one variant, run in worker processes).
Adapters: ``storage`` (the interface) with ``storage_fs`` and ``storage_s3``, ``staging`` (upload bodies),
``variant_cache``, ``change_events`` (the purge bus), and the HTTP layer ``assets``, ``upload_api``,
``app``, ``server``; ``settings`` and ``cli`` build it all from flags and environment.
"""
