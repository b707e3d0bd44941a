"""The edgefleet origin: assets from storage, image variants, uploads and change events."""
