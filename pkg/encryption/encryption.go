// Package encryption keeps Secrets encrypted at rest in etcd: the API
// server's EncryptionConfiguration (secretbox, a key generated under the
// data dir) and the rotation that `strata secrets-encrypt rotate` runs:
// a new key first, every Secret rewritten with it, the old key dropped.
package encryption

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"

	"github.com/strata-dev/strata/pkg/fileutil"
)

// Resources are what is encrypted: Secrets, as upstream's guide and k3s
// do. (ConfigMaps hold no secrets by contract; adding them costs every
// controller that reads them.)
var Resources = []string{"secrets"}

// Ensure writes file with a new key if it does not exist. The identity
// provider comes last so that Secrets written before encryption was on
// still read (they are rewritten encrypted by the next rotation).
func Ensure(file string) error {
	if _, err := os.Stat(file); err == nil {
		_, err := Load(file)
		return err
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("encryption config: %w", err)
	}
	key, err := newKey(time.Now())
	if err != nil {
		return err
	}
	return write(file, []apiserverv1.Key{key})
}

// Load reads file and returns its secretbox keys, the first one being
// the one new writes use.
func Load(file string) ([]apiserverv1.Key, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("encryption config: %w", err)
	}
	var cfg apiserverv1.EncryptionConfiguration
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		return nil, fmt.Errorf("encryption config %s: %w (move it away to have a new key made, but Secrets written with its key will no longer read)", file, err)
	}
	for _, r := range cfg.Resources {
		for _, p := range r.Providers {
			if p.Secretbox != nil && len(p.Secretbox.Keys) > 0 {
				for _, k := range p.Secretbox.Keys {
					if b, err := base64.StdEncoding.DecodeString(k.Secret); err != nil || len(b) != 32 {
						return nil, fmt.Errorf("encryption config %s: key %q is not 32 bytes of base64", file, k.Name)
					}
				}
				return p.Secretbox.Keys, nil
			}
		}
	}
	return nil, fmt.Errorf("encryption config %s has no secretbox keys", file)
}

func write(file string, keys []apiserverv1.Key) error {
	cfg := apiserverv1.EncryptionConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "apiserver.config.k8s.io/v1", Kind: "EncryptionConfiguration"},
		Resources: []apiserverv1.ResourceConfiguration{{
			Resources: Resources,
			Providers: []apiserverv1.ProviderConfiguration{
				{Secretbox: &apiserverv1.SecretboxConfiguration{Keys: keys}},
				{Identity: &apiserverv1.IdentityConfiguration{}},
			},
		}},
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	// The keys: readable by root only.
	if err := fileutil.WriteAtomic(file, raw, 0o600); err != nil {
		return fmt.Errorf("write encryption config: %w", err)
	}
	return nil
}

// newKey makes a 32-byte key named after its creation time, so that the
// key prefix in etcd ("k8s:enc:secretbox:v1:<name>:") says how old it is.
func newKey(now time.Time) (apiserverv1.Key, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return apiserverv1.Key{}, fmt.Errorf("generate key: %w", err)
	}
	return apiserverv1.Key{Name: "key-" + now.UTC().Format("20060102T150405Z"), Secret: base64.StdEncoding.EncodeToString(b)}, nil
}

// Rotate makes a new key the one writes use, rewrites every Secret with it
// and then drops the old keys, waiting each time for the running API
// server to load the file (it watches it). out gets one line per step.
func Rotate(ctx context.Context, file string, client kubernetes.Interface, out io.Writer) error {
	old, err := Load(file)
	if err != nil {
		return err
	}
	key, err := newKey(time.Now())
	if err != nil {
		return err
	}
	if key.Name == old[0].Name {
		return fmt.Errorf("key %s was made less than a second ago: try again", key.Name)
	}
	// 1. The new key first (new writes), the old ones still read.
	if err := writeAndWait(ctx, file, append([]apiserverv1.Key{key}, old...), old, client); err != nil {
		return err
	}
	fmt.Fprintf(out, "new key %s in use for writes\n", key.Name)
	// 2. Every Secret rewritten: the API server stores a Secret again
	// when it was read with a key that is not the first.
	n, err := rewriteSecrets(ctx, client)
	if err != nil {
		return fmt.Errorf("re-encrypt Secrets (the old keys stay until this succeeds; run rotate again): %w", err)
	}
	fmt.Fprintf(out, "%d Secrets re-encrypted with %s\n", n, key.Name)
	// 3. Only the new key.
	if err := writeAndWait(ctx, file, []apiserverv1.Key{key}, append([]apiserverv1.Key{key}, old...), client); err != nil {
		return err
	}
	names := make([]string, len(old))
	for i, k := range old {
		names[i] = k.Name
	}
	fmt.Fprintf(out, "old keys removed: %s\n", strings.Join(names, ", "))
	return nil
}

// writeAndWait writes keys and waits until the API server reports a
// successful reload; on a failed one it puts back previous.
func writeAndWait(ctx context.Context, file string, keys, previous []apiserverv1.Key, client kubernetes.Interface) error {
	ok0, failed0, err := reloads(ctx, client)
	if err != nil {
		return err
	}
	if err := write(file, keys); err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		ok, failed, err := reloads(ctx, client)
		if err != nil {
			return false, nil
		}
		if failed > failed0 {
			return false, errors.New("the API server refused the new encryption config")
		}
		return ok > ok0, nil
	})
	if err != nil {
		if werr := write(file, previous); werr != nil {
			return errors.Join(err, fmt.Errorf("restore the previous config: %w", werr))
		}
		return fmt.Errorf("wait for the API server to load %s (previous config restored): %w", file, err)
	}
	return nil
}

// reloads reads the API server's count of successful and failed reloads
// of the encryption config from its metrics.
func reloads(ctx context.Context, client kubernetes.Interface) (ok, failed float64, err error) {
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read the API server's metrics: %w", err)
	}
	return parseReloads(raw), parseFailures(raw), nil
}

const reloadMetric = "apiserver_encryption_config_controller_automatic_reloads_total{"

func parseReloads(metrics []byte) float64  { return sumMetric(metrics, `status="success"`) }
func parseFailures(metrics []byte) float64 { return sumMetric(metrics, `status="failure"`) }

func sumMetric(metrics []byte, label string) float64 {
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(metrics))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, reloadMetric) || !strings.Contains(line, label) {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// rewriteSecrets updates every Secret unchanged; the API server writes
// the ones stored with a key that is no longer first.
func rewriteSecrets(ctx context.Context, client kubernetes.Interface) (int, error) {
	list, err := client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("list Secrets: %w", err)
	}
	n := 0
	for _, s := range list.Items {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := client.CoreV1().Secrets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			_, err = client.CoreV1().Secrets(s.Namespace).Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		switch {
		case apierrors.IsNotFound(err):
			continue // deleted meanwhile: nothing to re-encrypt
		case err != nil:
			return n, fmt.Errorf("Secret %s/%s: %w", s.Namespace, s.Name, err)
		}
		n++
	}
	return n, nil
}
