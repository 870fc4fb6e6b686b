package signing

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

// PasswordEnv is the variable cosign reads the key password from; using the
// same one lets CI pipelines switch between cosign and strata unchanged.
const PasswordEnv = "COSIGN_PASSWORD"

// ReadPassword returns the key password from passwordFile when one is named,
// else from $COSIGN_PASSWORD. An empty but set variable means the empty
// password, as in cosign.
func ReadPassword(passwordFile string) ([]byte, error) {
	if passwordFile != "" {
		data, err := os.ReadFile(passwordFile)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		// Files written by editors and `echo` end in a newline that is not
		// part of the password.
		data = bytes.TrimSuffix(data, []byte("\n"))
		data = bytes.TrimSuffix(data, []byte("\r"))
		return data, nil
	}
	if pw, ok := os.LookupEnv(PasswordEnv); ok {
		return []byte(pw), nil
	}
	return nil, errors.New("no key password: set " + PasswordEnv + " or pass --password-file FILE")
}
