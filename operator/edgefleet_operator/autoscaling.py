"""The autoscaler's kopf timer: one per CdnCluster with autoscaling on (being written)."""
