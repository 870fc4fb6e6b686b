package signing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// The error types below let callers (the CLI, an admission webhook) tell a
// missing or wrong signature, which is a policy decision, from a registry
// that cannot be reached, which is an outage. Their messages are meant to be
// shown to users as they are.

// NoSignaturesError means neither discovery mechanism found a signature
// that could be checked.
type NoSignaturesError struct {
	Image string
	Tag   string
	// Unreadable lists what was found but could not be read as a signature.
	Unreadable []string
}

func (e *NoSignaturesError) Error() string {
	msg := fmt.Sprintf("no signatures found for %s (looked for tag %s and OCI referrers)", e.Image, e.Tag)
	if len(e.Unreadable) > 0 {
		msg += "; unreadable: " + joinDetails(e.Unreadable)
	}
	return msg
}

// KeyMismatchError means signatures exist but none verifies with any of
// the trusted keys.
type KeyMismatchError struct {
	Image      string
	Keys       int
	Signatures int
	// Details lists, one per signature, why it was rejected.
	Details []string
}

func (e *KeyMismatchError) Error() string {
	msg := fmt.Sprintf("signature does not match any of %d keys (%s has %d signatures)", e.Keys, e.Image, e.Signatures)
	if len(e.Details) > 0 {
		msg += ": " + joinDetails(e.Details)
	}
	return msg
}

// DigestMismatchError means a signature verifies with a trusted key but
// signs another image: the signature was copied, or the tag was moved.
type DigestMismatchError struct {
	Image  string
	Signed string
	Actual string
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("signature is for digest %s but %s is %s", e.Signed, e.Image, e.Actual)
}

// RegistryUnreachableError means no answer came from the registry at all
// (connection refused, DNS, TLS, timeout), as opposed to an HTTP error.
type RegistryUnreachableError struct {
	Err error
}

func (e *RegistryUnreachableError) Error() string { return "registry unreachable: " + e.Err.Error() }
func (e *RegistryUnreachableError) Unwrap() error { return e.Err }

// registryError wraps err from go-containerregistry with what was being
// done, and marks transport failures as RegistryUnreachableError so callers
// can fail open or closed on outages deliberately.
func registryError(err error, doing string) error {
	if err == nil {
		return nil
	}
	if isUnreachable(err) {
		return &RegistryUnreachableError{Err: fmt.Errorf("%s: %w", doing, err)}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func isUnreachable(err error) bool {
	var terr *transport.Error
	if errors.As(err, &terr) {
		// The registry answered, with an HTTP error.
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var nerr net.Error
	var uerr *url.Error
	return errors.As(err, &nerr) || errors.As(err, &uerr)
}

// isNotFound reports whether the registry said the manifest does not exist.
func isNotFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// joinDetails keeps error messages readable when an image carries many
// bad signatures.
func joinDetails(details []string) string {
	const shown = 5
	if len(details) <= shown {
		return strings.Join(details, "; ")
	}
	return strings.Join(details[:shown], "; ") + fmt.Sprintf("; and %d more", len(details)-shown)
}
