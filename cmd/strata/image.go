package main

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/strata-dev/strata/pkg/registry"
)

func newImageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build OCI images without Docker and push them to a registry",
	}
	cmd.AddCommand(newImageBuildCommand(), newImagePushCommand(), newImageSignCommand(), newImageVerifyCommand())
	return cmd
}

func newImageBuildCommand() *cobra.Command {
	var (
		spec     registry.ImageSpec
		tag      string
		output   string
		push     bool
		artifact bool
		entry    string
		labels   []string
	)
	cmd := &cobra.Command{
		Use:   "build (--binary FILE | --dir DIR | --wasm MODULE) -t NAME[:TAG] [-o image.tar] [--push]",
		Short: "Build an image from a static binary, a directory or a WASI module",
		Example: `  strata image build --binary bin/hello --port 8080 -t localhost:5000/hello:v1 --push
  strata image build --wasm bin/wasm-http.wasm --http-port 8080 -t localhost:5000/wasm-http:v1 --push
  strata image build --dir ./site --entrypoint /bin/server -t localhost:5000/site:v1 -o site.tar`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tag == "" {
				return fmt.Errorf("missing -t NAME[:TAG]: name the image, e.g. -t localhost:5000/hello:v1")
			}
			if output == "" && !push {
				return fmt.Errorf("nothing to do: pass -o FILE to write a tarball and/or --push to upload %s", tag)
			}
			if entry != "" {
				spec.Entrypoint = strings.Fields(entry)
			}
			spec.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return fmt.Errorf("--label %q: use KEY=VALUE", l)
				}
				spec.Labels[k] = v
			}
			var img v1.Image
			var err error
			if artifact {
				img, err = wasmArtifact(cmd, spec)
			} else {
				img, err = registry.Build(spec)
			}
			if err != nil {
				return err
			}
			if output != "" {
				if err := registry.Save(img, tag, output); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s)\n", output, tag)
			}
			if push {
				ref, err := registry.Push(img, tag)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), ref)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Binary, "binary", "", "static executable to run (placed at /NAME unless --entrypoint says otherwise)")
	f.BoolVar(&spec.WithLibs, "with-libs", false, "let --binary be dynamically linked: copy its ELF interpreter and shared libraries from this machine into the image")
	f.StringVar(&spec.Dir, "dir", "", "directory that becomes the image's root file system")
	f.StringVar(&spec.Wasm, "wasm", "", "WASI module (GOOS=wasip1 GOARCH=wasm) to run with runtimeClassName: wasm (placed at /NAME)")
	f.BoolVar(&artifact, "artifact", false, "with --wasm: build a CNCF wasm OCI artifact (the module as an application/wasm layer) instead of an image with the module as a file")
	f.IntVar(&spec.HTTPPort, "http-port", 0, "with --wasm: serve HTTP on this port, one module instance per request (CGI style)")
	f.StringVar(&entry, "entrypoint", "", "program and arguments to run, e.g. \"/hello --verbose\"")
	f.StringArrayVar(&spec.Cmd, "cmd", nil, "default arguments (repeatable)")
	f.StringArrayVarP(&spec.Env, "env", "e", nil, "environment variable NAME=VALUE (repeatable)")
	f.StringArrayVarP(&spec.Ports, "port", "p", nil, "exposed port, e.g. 8080 or 53/udp (repeatable)")
	f.StringVarP(&spec.WorkDir, "workdir", "w", "", "working directory")
	f.StringVarP(&spec.User, "user", "u", "", "user (and group) to run as, e.g. 65532:65532")
	f.StringArrayVar(&labels, "label", nil, "image label KEY=VALUE (repeatable)")
	f.StringVarP(&tag, "tag", "t", "", "image name, e.g. localhost:5000/hello:v1")
	f.StringVarP(&output, "output", "o", "", "write the image to this tarball")
	f.BoolVar(&push, "push", false, "push the image to the registry named in -t")
	return cmd
}

func newImagePushCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "push IMAGE.tar NAME[:TAG]",
		Short:   "Push an image tarball to a registry (the embedded one or any other)",
		Example: "  strata image push hello.tar localhost:5000/hello:v1",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("need 2 arguments, the tarball and the image name; got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := registry.Load(args[0])
			if err != nil {
				return err
			}
			ref, err := registry.Push(img, args[1])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref)
			return nil
		},
	}
}

// wasmArtifact builds a CNCF wasm artifact, which carries the module and
// nothing else: flags that would set an entrypoint, environment, labels or
// files have no place in it.
func wasmArtifact(cmd *cobra.Command, spec registry.ImageSpec) (v1.Image, error) {
	if spec.Wasm == "" {
		return nil, fmt.Errorf("--artifact packs a wasm module: pass --wasm MODULE")
	}
	for _, name := range []string{"binary", "dir", "http-port", "entrypoint", "cmd", "env", "port", "workdir", "user", "label", "with-libs"} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			return nil, fmt.Errorf("--%s does not apply to --artifact: a wasm artifact holds only the module (set the pod's command, env and ports in its spec, or drop --artifact)", name)
		}
	}
	return registry.BuildWasmArtifact(spec.Wasm)
}
