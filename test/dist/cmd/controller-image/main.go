// Command controller-image writes mcsa-controller's multi-arch release image as an OCI archive,
// offline and without Docker (`make image`):
//
//	go run ./test/dist/cmd/controller-image -version v0.1.0 -out dist/mcsa-controller_v0.1.0.oci.tar
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/dist/controllerimage"
)

func main() {
	version := flag.String("version", "", "image tag, the release version (e.g. v0.1.0); the plugin of that version installs this tag")
	out := flag.String("out", "", "the OCI archive to write")
	platforms := flag.String("platforms", strings.Join(controllerimage.Platforms, ","), "comma-separated linux platforms")
	src := flag.String("src", ".", "root of the kubectl-mcsa module")
	flag.Parse()
	if *version == "" || *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: controller-image -version VERSION -out FILE [-platforms linux/amd64,linux/arm64] [-src DIR]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	if err := controllerimage.Build(ctx, *src, *version, strings.Split(*platforms, ","), *out); err != nil {
		fmt.Fprintln(os.Stderr, "controller-image:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "%s: %s for %s (%s)\n", *out, controllerimage.Ref(*version), *platforms, time.Since(start).Round(100*time.Millisecond))
}
