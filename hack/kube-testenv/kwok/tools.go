//go:build tools

// Package tools records the commands built from sigs.k8s.io/kwok.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
