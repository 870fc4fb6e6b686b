package node

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// StopAllPods stops every pod sandbox through CRI, so that containers,
// shims and pod network namespaces are gone before containerd stops. The
// kubelet starts them again at the next server start.
func StopAllPods(ctx context.Context, endpoint string) error {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to CRI %s: %w", endpoint, err)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	// Loop: the kubelet may have started a sandbox while we stopped others.
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
			Filter: &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}},
		})
		if err != nil {
			return fmt.Errorf("list pod sandboxes: %w", err)
		}
		if len(resp.Items) == 0 {
			return nil
		}
		for _, sb := range resp.Items {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := rt.StopPodSandbox(sctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
			cancel()
			if err != nil {
				klog.ErrorS(err, "Stop pod sandbox", "pod", klog.KRef(sb.Metadata.Namespace, sb.Metadata.Name))
			}
		}
	}
	return nil
}
