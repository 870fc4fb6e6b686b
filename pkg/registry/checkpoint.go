package registry

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CheckpointAnnotation marks an image as a container checkpoint and names
// the container it was taken from (checkpointctl's annotation, which
// containerd and CRI-O read). A pod whose container image is such an image
// restores the checkpoint instead of starting the image's entrypoint.
const CheckpointAnnotation = "org.criu.checkpoint.container.name"

// checkpointFiles are what every kubelet checkpoint archive holds (the
// CRI's config, spec and criu image directory).
var checkpointFiles = []string{"config.dump", "spec.dump", "checkpoint/"}

// BuildCheckpointImage packs a kubelet checkpoint archive as an OCI image
// (its one layer is the archive itself), annotated so that containerd
// restores from it.
func BuildCheckpointImage(archive, container string) (v1.Image, error) {
	if err := checkArchive(archive); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromFile(archive, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("checkpoint archive %s: %w", archive, err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, fmt.Errorf("checkpoint image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	// containerd checks the platform against the pod's sandbox.
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return mutate.Annotations(img, map[string]string{CheckpointAnnotation: container}).(v1.Image), nil
}

// checkArchive says what is wrong with a file that is not a kubelet
// checkpoint archive, before anything is pushed.
func checkArchive(archive string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("checkpoint archive: %w", err)
	}
	defer f.Close()
	seen := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("checkpoint archive %s is not a tar file: %w (pass the path `strata checkpoint` printed)", archive, err)
		}
		for _, want := range checkpointFiles {
			if strings.TrimPrefix(h.Name, "./") == want || strings.HasPrefix(strings.TrimPrefix(h.Name, "./"), want) && strings.HasSuffix(want, "/") {
				seen[want] = true
			}
		}
	}
	var missing []string
	for _, want := range checkpointFiles {
		if !seen[want] {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s is not a kubelet checkpoint archive: it lacks %s (pass the path `strata checkpoint` printed)", archive, strings.Join(missing, ", "))
	}
	return nil
}
