package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/spf13/cobra"
	"github.com/strata-dev/strata/pkg/fileutil"
	"github.com/strata-dev/strata/pkg/layout"
	"github.com/strata-dev/strata/pkg/signing"
	strataversion "github.com/strata-dev/strata/pkg/version"
)

func newKeysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage cosign-compatible image signing keys",
	}
	cmd.AddCommand(newKeysGenerateCommand())
	return cmd
}

func newKeysGenerateCommand() *cobra.Command {
	var (
		prefix       string
		passwordFile string
		force        bool
	)
	cmd := &cobra.Command{
		Use:   "generate [--output-prefix cosign] [--password-file FILE] [--force]",
		Short: "Generate an ECDSA P-256 key pair in cosign's format (PREFIX.key, PREFIX.pub)",
		Long: `Generate a key pair for signing images. PREFIX.key is the private key,
encrypted with a password read from --password-file or $COSIGN_PASSWORD; PREFIX.pub
is the public key to give to verifiers. Both files are interchangeable with the ones
cosign generate-key-pair writes.`,
		Example: `  COSIGN_PASSWORD=... strata keys generate
  strata keys generate --output-prefix ci --password-file /run/secrets/key-password`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			password, err := signing.ReadPassword(passwordFile)
			if err != nil {
				return err
			}
			if len(password) == 0 {
				// Allowed because cosign allows it (CI often relies on it),
				// but the key file alone then signs for anyone holding it.
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: the private key is encrypted with an empty password")
			}
			kp, err := signing.GenerateKeyPair(password)
			if err != nil {
				return err
			}
			privFile, pubFile, err := signing.WriteKeyPair(kp, prefix, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Private key written to %s\nPublic key written to %s\n", privFile, pubFile)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&prefix, "output-prefix", "cosign", "write PREFIX.key and PREFIX.pub")
	f.StringVar(&passwordFile, "password-file", "", "read the key password from this file instead of $COSIGN_PASSWORD")
	f.BoolVar(&force, "force", false, "replace existing key files")
	return cmd
}

func newImageSignCommand() *cobra.Command {
	var (
		keyFile      string
		passwordFile string
		clusterKey   bool
		dataDir      string
		timeout      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sign (--key cosign.key | --cluster-key) IMAGE",
		Short: "Sign an image in the registry, as cosign sign --key does",
		Long: `Resolve IMAGE to its manifest digest and store a signature of that digest next to
it, under the tag sha256-<hex>.sig. Signatures already there (by other keys) are kept.
The key password is read from --password-file or $COSIGN_PASSWORD.

--cluster-key signs with the key the Strata server generated (DATA_DIR/signing),
which the cluster's ClusterImagePolicies can trust through the Secret
strata-system/image-signing-key.`,
		Example: `  strata image sign --key cosign.key localhost:5000/hello:v1
  strata image sign --cluster-key localhost:5000/hello:v1`,
		Args: exactlyOneImage,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case clusterKey && keyFile != "":
				return errors.New("--key and --cluster-key both given: choose one")
			case clusterKey:
				l, err := layout.New(dataDir)
				if err != nil {
					return err
				}
				keyFile, _, passwordFile = l.SigningKey()
				if !fileutil.Exists(keyFile) {
					return fmt.Errorf("--cluster-key: %s does not exist: start `strata server --data-dir %s` once, or pass --data-dir", keyFile, dataDir)
				}
			case keyFile == "":
				return errors.New("no key: pass --key cosign.key (from `strata keys generate`) or --cluster-key")
			}
			password, err := signing.ReadPassword(passwordFile)
			if err != nil {
				return err
			}
			signer, err := signing.LoadPrivateKey(keyFile, password)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := signing.Sign(ctx, args[0], signer, registryOptions()...)
			if err != nil {
				return err
			}
			if res.AlreadySigned {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is already signed with this key (%s)\n", res.Image, res.SignatureTag)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Signed %s\nSignatures stored at %s (%d in all)\n", res.Image, res.SignatureTag, res.Signatures)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "private key file from `strata keys generate` or cosign generate-key-pair")
	f.StringVar(&passwordFile, "password-file", "", "read the key password from this file instead of $COSIGN_PASSWORD")
	f.BoolVar(&clusterKey, "cluster-key", false, "sign with the Strata server's own key (DATA_DIR/signing/cosign.key)")
	f.StringVar(&dataDir, "data-dir", defaultDataDir(), "the server's data directory, for --cluster-key; env STRATA_DATA_DIR")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "give up on the registry after this long")
	return cmd
}

func newImageVerifyCommand() *cobra.Command {
	var (
		keyFiles []string
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify --key cosign.pub [--key other.pub ...] IMAGE",
		Short: "Check that an image is signed by one of the given keys, as cosign verify --key does",
		Long: `Resolve IMAGE to its manifest digest and accept it if a signature made by any of the
given public keys names that digest. Both cosign's sha256-<hex>.sig tags and sigstore
bundles attached as OCI referrers are read. Keyless (Fulcio/Rekor) signatures are not
supported; transparency log entries are not checked.`,
		Example: `  strata image verify --key cosign.pub localhost:5000/hello:v1
  strata image verify --key new.pub --key old.pub localhost:5000/hello:v1   # during a key rotation`,
		Args: exactlyOneImage,
		RunE: func(cmd *cobra.Command, args []string) error {
			verifiers := make([]signature.Verifier, 0, len(keyFiles))
			for _, f := range keyFiles {
				v, err := signing.LoadPublicKey(f)
				if err != nil {
					return err
				}
				verifiers = append(verifiers, v)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			digest, err := signing.Verify(ctx, args[0], verifiers, registryOptions()...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Verified %s (%s)\n", args[0], digest)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&keyFiles, "key", nil, "trusted public key file, e.g. cosign.pub (repeatable: any one may match)")
	f.DurationVar(&timeout, "timeout", time.Minute, "give up on the registry after this long")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

func exactlyOneImage(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("need 1 argument, the image (e.g. localhost:5000/hello:v1); got %d", len(args))
	}
	return nil
}

// registryOptions authenticate as docker and crane do, from
// ~/.docker/config.json and credential helpers; loopback registries need
// nothing.
func registryOptions() []remote.Option {
	return []remote.Option{
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithUserAgent("strata/" + strataversion.Version),
	}
}
