package main

import (
	"github.com/spf13/pflag"

	"github.com/strata-dev/strata/pkg/serverless"
)

// addGatewaySecurityFlags registers how the function gateway protects its
// listener, the same for `strata server` and `strata extensions`.
func addGatewaySecurityFlags(fs *pflag.FlagSet, s *serverless.Security) {
	fs.StringVar(&s.TLSCertFile, "gateway-tls-cert-file", "", "PEM certificate the function gateway serves HTTPS with (functions' URLs then say https)")
	fs.StringVar(&s.TLSKeyFile, "gateway-tls-key-file", "", "private key of --gateway-tls-cert-file")
	fs.StringVar(&s.Auth, "gateway-auth", serverless.AuthNone, "who may call functions: none (public endpoints) or kubernetes (a bearer token, or a client certificate of the cluster, allowed to create functions/invoke in the function's namespace)")
}
