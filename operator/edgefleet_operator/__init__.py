"""The edgefleet operator (kopf): reconciles CdnCluster and PurgeRequest."""
