// A CoreDNS with only the plugins the one-node cluster needs: cluster.local names of Services and Pods
// answered from the API server. Nothing is forwarded, so no DNS query leaves the machine. Upstream's
// full plugin list would pull in every cloud SDK for nothing.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func init() {
	// Order matters: it is the order in which plugins see a query.
	dnsserver.Directives = []string{"bind", "reload", "health", "ready", "errors", "log", "kubernetes"}
}

func main() {
	coremain.Run()
}
