//go:build tools

// Package tools records the commands built from helm.sh/helm/v3.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
