package signing

import (
	"strings"
	"testing"
)

// FuzzParseBundle: any bytes a registry serves as a sigstore bundle are
// refused with an error or give evidence with something to check.
func FuzzParseBundle(f *testing.F) {
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AAAA"}]}}`))
	f.Add([]byte(`{"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},"signature":"AAAA"}}`))
	f.Add([]byte(`{"dsseEnvelope":{"signatures":[]}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := parseBundle("fuzz", data)
		if err != nil {
			return
		}
		switch e := ev.(type) {
		case *dsseEnvelope:
			if len(e.signatures) == 0 {
				t.Fatal("DSSE evidence without signatures")
			}
		case *messageSignature:
			if len(e.digest) != 32 {
				t.Fatalf("message digest of %d bytes", len(e.digest))
			}
		default:
			t.Fatalf("evidence %T", ev)
		}
	})
}

// FuzzStatementDigests: a signed in-toto payload gives sha256 subjects
// only when it is a cosign signing statement.
func FuzzStatementDigests(f *testing.F) {
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"` + CosignSignPredicateType + `","subject":[{"digest":{"sha256":"ab"}}]}`))
	f.Add([]byte(`{"predicateType":"https://spdx.dev/Document","subject":[{"digest":{"sha256":"ab"}}]}`))
	f.Add([]byte(`{"predicateType":"` + CosignSignPredicateType + `","subject":[{"digest":{"sha512":"ab"}}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		digests, err := statementDigests(payload)
		if err != nil {
			return
		}
		if len(digests) == 0 {
			t.Fatal("no digests and no error")
		}
		for _, d := range digests {
			if !strings.HasPrefix(d, "sha256:") {
				t.Fatalf("digest %q", d)
			}
		}
	})
}

// FuzzDecodePublicKey: whatever is pasted as a policy's key is refused
// or gives a key a verifier can be made for.
func FuzzDecodePublicKey(f *testing.F) {
	kp, err := GenerateKeyPair([]byte("pw"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(kp.PublicPEM)
	f.Add(kp.PrivatePEM)
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := DecodePublicKey(data)
		if err != nil {
			return
		}
		if _, err := verifierFor(pub, "fuzz"); err != nil {
			t.Fatalf("a decoded key has no verifier: %v", err)
		}
	})
}
